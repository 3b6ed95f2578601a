"""``llmbackend run --stream`` (issue 16), driven as a subprocess against the loopback emulators:
the same text as a whole call, a streaming request on the wire, the default on a terminal (a
pseudo-terminal as the child's stdout), every delta flushed as it arrives, a broken stream's
partial text then one error line, Ctrl-C closing the connection, and the usage error beside
``--json``."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.anthropic_emulator import API_KEY as ANTHROPIC_KEY
from tests.anthropic_emulator import AnthropicEmulator
from tests.emulator import API_KEY, OpenAIEmulator, Recorded
from tests.gemini_emulator import API_KEY as GEMINI_KEY
from tests.gemini_emulator import GeminiEmulator
from tests.test_cli import SCHEMA, cli, one_error_line

PROMPT = "Hello there, stream this"
EMULATORS = ("openai", "anthropic", "gemini")


@attrs.frozen
class Server:
    """One provider's emulator as the command line reaches it."""

    provider: str
    model: str
    env: dict[str, str]
    emulator: OpenAIEmulator | AnthropicEmulator | GeminiEmulator
    calls: Callable[[], list[Recorded]]  # the generate calls received, in order
    streamed: Callable[[Recorded], bool]  # whether a call asked for a stream

    def run(self, *args: str) -> list[str]:
        return ["run", "-p", self.provider, "-m", self.model, *args]

    @property
    def port(self) -> int:
        return int(self.env[BASE_URLS[self.provider]].split(":")[2].split("/")[0])


BASE_URLS = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL",
             "gemini": "GOOGLE_GEMINI_BASE_URL"}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Batch handles in this test's own directory; standard output buffered as it is for a
    user (no PYTHONUNBUFFERED), so that only the command's own flushes make a delta show."""
    environ = {name: value for name, value in os.environ.items()
               if name != "PYTHONUNBUFFERED"}
    return {**environ, "LLMBACKEND_STATE_DIR": str(tmp_path / "state")}


@pytest.fixture
def openai(emulator: OpenAIEmulator, env: dict[str, str]) -> Server:
    return Server(
        "openai", "gpt-4o-mini",
        {**env, "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": emulator.base_url}, emulator,
        lambda: [r for r in emulator.requests if r.path == "/v1/responses"],
        lambda r: r.json().get("stream") is True)


@pytest.fixture
def anthropic(anthropic_emulator: AnthropicEmulator, env: dict[str, str]) -> Server:
    return Server(
        "anthropic", "claude-haiku-4-5",
        {**env, "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
         "ANTHROPIC_BASE_URL": anthropic_emulator.base_url}, anthropic_emulator,
        lambda: [r for r in anthropic_emulator.requests if r.path == "/v1/messages"],
        lambda r: r.json().get("stream") is True)


@pytest.fixture
def gemini(gemini_emulator: GeminiEmulator, env: dict[str, str]) -> Server:
    return Server(
        "gemini", "gemini-2.5-flash",
        {**env, "GOOGLE_API_KEY": GEMINI_KEY, "GOOGLE_GEMINI_BASE_URL": gemini_emulator.base_url},
        gemini_emulator,
        lambda: [r for r in gemini_emulator.requests if "enerateContent" in r.path],
        lambda r: ":streamGenerateContent" in r.path.split("?")[0])


@pytest.fixture(params=EMULATORS)
def server(request: pytest.FixtureRequest) -> Server:
    server: Server = request.getfixturevalue(request.param)
    return server


# --- running the child ----------------------------------------------------------------------------


def on_a_terminal(env: dict[str, str], args: Sequence[str], timeout: float = 60
                  ) -> tuple[int, str, str]:
    """Run the command line with a pseudo-terminal as its standard output (stderr a pipe):
    its exit code, what the terminal showed (line endings as written) and its stderr."""
    master, slave = os.openpty()
    child = subprocess.Popen([sys.executable, "-m", "llmbackend", *args], env=env,
                             stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    shown = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                if child.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child's end of the terminal is closed
                break
            if not data:
                break
            shown += data
    finally:
        os.close(master)
    assert child.stderr is not None
    stderr = child.stderr.read().decode()
    child.wait(timeout=30)
    return child.returncode, shown.decode().replace("\r\n", "\n"), stderr


def read_some(stream: Any, deadline: float) -> bytes:
    """The next bytes the child wrote to ``stream`` (a pipe), waiting until ``deadline``."""
    ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
    assert ready, "the child wrote nothing in time"
    return os.read(stream.fileno(), 4096)


#: The command line, with SIGINT raising KeyboardInterrupt as in a terminal (even where the test
#: runner ignores it); once ``main`` has returned, the process says so on stderr and waits for a
#: line on stdin, so that the test can look at its sockets while it is still alive.
HELD = """\
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from llmbackend.cli import main
code = main(sys.argv[1:])
sys.stderr.write("@@ returned\\n")
sys.stderr.flush()
sys.stdin.readline()
sys.exit(code)
"""


def connections_to(pid: int, port: int) -> int:
    """How many established TCP connections process ``pid`` holds to 127.0.0.1:``port``."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state, inode = fields[2], fields[3], fields[9]
        if int(remote.split(":")[1], 16) == port and state == "01" and inode in inodes:
            count += 1
    return count


# --- the same answer, streamed or not -------------------------------------------------------------


def test_stream_prints_the_same_text_as_a_whole_call_and_asks_for_a_stream(server: Server
                                                                           ) -> None:
    streamed = cli(server.env, *server.run(PROMPT, "--stream"))
    whole = cli(server.env, *server.run(PROMPT, "--no-stream"))
    default = cli(server.env, *server.run(PROMPT))  # a pipe is no terminal: whole
    assert (streamed.returncode, streamed.stderr) == (0, "")
    assert whole.returncode == default.returncode == 0
    assert streamed.stdout == whole.stdout == default.stdout
    assert streamed.stdout.endswith("\n") and not streamed.stdout.endswith("\n\n")
    assert PROMPT in streamed.stdout
    assert [server.streamed(call) for call in server.calls()] == [True, False, False]


def test_a_terminal_gets_a_stream_by_default(server: Server) -> None:
    code, shown, stderr = on_a_terminal(server.env, server.run(PROMPT))
    whole = cli(server.env, *server.run(PROMPT))
    assert (code, stderr) == (0, "")
    assert shown == whole.stdout
    assert [server.streamed(call) for call in server.calls()] == [True, False]
    code, shown, _ = on_a_terminal(server.env, server.run(PROMPT, "--no-stream"))
    assert (code, shown) == (0, whole.stdout)
    assert server.streamed(server.calls()[-1]) is False


def test_every_delta_is_flushed_as_it_arrives(server: Server) -> None:
    full = cli(server.env, *server.run(PROMPT, "--no-stream")).stdout
    server.emulator.stream_fault(trickle=0.3)
    child = subprocess.Popen([sys.executable, "-m", "llmbackend", *server.run(PROMPT, "--stream")],
                             env=server.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    assert child.stdout is not None
    first = read_some(child.stdout, time.monotonic() + 30)
    # Seen while the stream is still trickling: a proper start of the answer, not all of it.
    assert child.poll() is None
    assert 0 < len(first) < len(full.encode())
    assert full.encode().startswith(first)
    rest, stderr = child.communicate(timeout=60)
    assert (child.returncode, stderr) == (0, b"")
    assert (first + rest).decode() == full


# --- schemas and --json ---------------------------------------------------------------------------


def test_a_schema_prints_the_parsed_json_whole_unless_stream_is_asked_for(
        openai: Server, tmp_path: Path) -> None:
    schema = tmp_path / "title.json"
    schema.write_text(json.dumps(SCHEMA))
    code, shown, stderr = on_a_terminal(openai.env, openai.run("A title", "--schema",
                                                               str(schema)))
    assert (code, shown, stderr) == (0, '{"title": "example"}\n', "")  # dumps, as today
    streamed = cli(openai.env, *openai.run("A title", "--schema", str(schema), "--stream"))
    assert (streamed.returncode, streamed.stdout, streamed.stderr) == (
        0, '{"title":"example"}\n', "")  # the raw JSON text, as it came
    assert [openai.streamed(call) for call in openai.calls()] == [False, True]


def test_a_streamed_answer_that_fails_its_schema_is_the_usual_error(openai: Server,
                                                                  tmp_path: Path) -> None:
    # The emulated model answers "example", which this schema refuses.
    schema = tmp_path / "long.json"
    schema.write_text(json.dumps({**SCHEMA, "properties": {
        "title": {"type": "string", "minLength": 20}}}))
    args = openai.run("A title", "--schema", str(schema), "--max-retries", "0")
    whole = cli(openai.env, *args)
    streamed = cli(openai.env, *args, "--stream")
    assert whole.returncode == streamed.returncode == 3
    assert one_error_line(streamed) == one_error_line(whole)
    assert (whole.stdout, streamed.stdout) == ("", '{"title":"example"}\n')
    assert [openai.streamed(call) for call in openai.calls()] == [False, True]


def test_stream_with_json_is_a_usage_error_and_sends_nothing(openai: Server) -> None:
    done = cli(openai.env, *openai.run(PROMPT, "--stream", "--json"))
    assert (done.returncode, done.stdout) == (2, "")
    one_error_line(done, "--stream", "--json", "run --help")
    assert openai.emulator.requests == []
    # --json alone never streams, on a terminal either.
    code, shown, _ = on_a_terminal(openai.env, openai.run(PROMPT, "--json"))
    assert code == 0 and json.loads(shown)["text"] == f"Echo: {PROMPT}"
    assert [openai.streamed(call) for call in openai.calls()] == [False]


# --- a stream that breaks, and Ctrl-C -------------------------------------------------------------


@pytest.mark.parametrize(("provider", "fault", "cause"), [
    ("openai", {"cut": True}, "without its 'response.completed' event"),
    ("anthropic", {"error": True}, "error"),
    ("gemini", {"stall": 3.0}, "the stream stalled: no bytes arrived for 1 s"),
    ("openai", {"error": True}, "server_error"),
])
def test_a_stream_that_breaks_after_text_prints_it_then_one_error_line(
        request: pytest.FixtureRequest, provider: str, fault: dict[str, Any],
        cause: str) -> None:
    server: Server = request.getfixturevalue(provider)
    full = cli(server.env, *server.run(PROMPT)).stdout
    server.emulator.stream_fault(**fault)
    started = time.monotonic()
    done = cli(server.env, *server.run(PROMPT, "--stream", "--timeout", "1"))
    assert done.returncode == 3
    line = one_error_line(done, "StreamError: the stream broke after")
    assert cause in line
    partial = done.stdout.removesuffix("\n")
    assert done.stdout.endswith("\n") and partial and full.startswith(partial)
    assert f"after {len(partial)} characters" in line
    if "stall" in fault:
        assert time.monotonic() - started < 3.0  # the timeout bounds the wait, not the stall
    assert len(server.calls()) == 2  # the broken stream was not sent again


def test_a_failure_before_any_text_prints_no_line_break(openai: Server,
                                                        emulator: OpenAIEmulator) -> None:
    emulator.reply(400, {"error": {"message": "Bad things.", "type": "invalid_request_error",
                                   "param": None, "code": None}})
    done = cli(openai.env, *openai.run(PROMPT, "--stream"))
    assert (done.returncode, done.stdout) == (3, "")
    one_error_line(done, "HTTPStatusError", "Bad things.")


@pytest.mark.skipif(not Path("/proc/self/net/tcp").exists(), reason="reads Linux's /proc")
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_ctrl_c_mid_stream_closes_the_connection_and_exits_130(
        request: pytest.FixtureRequest, provider: str) -> None:
    server: Server = request.getfixturevalue(provider)
    full = cli(server.env, *server.run(PROMPT)).stdout
    server.emulator.stream_fault(trickle=0.3)
    child = subprocess.Popen([sys.executable, "-c", HELD, *server.run(PROMPT, "--stream")],
                             env=server.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None and child.stdin is not None
    try:
        first = read_some(child.stdout, time.monotonic() + 30)
        assert connections_to(child.pid, server.port) == 1  # streaming: the connection is open
        child.send_signal(signal.SIGINT)
        stderr = b""
        deadline = time.monotonic() + 30
        while b"@@ returned\n" not in stderr:
            stderr += read_some(child.stderr, deadline)
        # main has returned, the process is still alive: the stream's connection is gone.
        assert connections_to(child.pid, server.port) == 0
        rest, more = child.communicate(b"\n", timeout=30)  # let it exit
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130
    printed = (first + rest).decode()
    assert printed and full.startswith(printed) and len(printed) < len(full)
    errors = (stderr + more).decode().replace("@@ returned\n", "").strip().splitlines()
    assert errors == ["llmbackend: error: interrupted"]  # run leaves nothing behind


@pytest.mark.runtime
def test_a_local_model_streams_the_same_text(env: dict[str, str], tiny_model: Path) -> None:
    pytest.importorskip("transformers")
    local = {**env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    args = ["run", "-p", "transformers", "-m", str(tiny_model), "Hello", "--max-tokens", "8",
            "--seed", "3", "-O", "apply_chat_template=true"]
    whole = cli(local, *args, "--no-stream")
    streamed = cli(local, *args, "--stream")
    assert whole.returncode == streamed.returncode == 0, streamed.stderr
    assert streamed.stdout == whole.stdout and streamed.stdout.endswith("\n")
