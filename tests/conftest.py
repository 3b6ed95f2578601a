"""Test configuration: a network guard (127.0.0.1 only), a clean environment, the loopback
emulator, and the recorded fixtures."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.anthropic_emulator import API_KEY as ANTHROPIC_KEY
from tests.anthropic_emulator import AnthropicEmulator
from tests.emulator import API_KEY, OpenAIEmulator
from tests.gemini_emulator import API_KEY as GEMINI_KEY
from tests.gemini_emulator import GeminiEmulator

# Machines here are noisy: no per-example deadline. The example count stays at Hypothesis' default.
settings.register_profile("default", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# vLLM (the CPU build, in tests) runs in this process, with a small KV cache: these are read when
# vllm is imported, so they are set before any test runs.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

ROOT = Path(__file__).resolve().parent.parent
# Byte-identical copies of the team's shared material (recorded traffic, the OpenAI OpenAPI spec,
# the seed README), so that a clean clone tests on its own; test_shared_copies.py checks them
# against ../shared wherever that exists.
DATA = ROOT / "tests" / "data"
FIXTURES = DATA / "fixtures"
SPECS = DATA / "specs"
SEED = DATA / "seed"
SHARED = ROOT.parent / "shared"


# --- network guard --------------------------------------------------------------------------------

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class NetworkBlockedError(RuntimeError):
    """A test tried to reach something other than 127.0.0.1."""


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _check(sock: socket.socket, address: Any) -> None:
    if sock.family == getattr(socket, "AF_UNIX", None):
        return
    host = address[0] if isinstance(address, tuple) else address
    if host not in LOOPBACK:
        raise NetworkBlockedError(f"tests may only connect to 127.0.0.1, not {address!r}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check(self, address)
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check(self, address)
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host is not None and (host.decode() if isinstance(host, bytes) else host) not in LOOPBACK:
        raise NetworkBlockedError(f"tests may not resolve {host!r}: no network but 127.0.0.1")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
socket.getaddrinfo = _guarded_getaddrinfo


# --- environment ----------------------------------------------------------------------------------

_PROVIDER_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
                 "GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GEMINI_BASE_URL",
                 "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                 "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the developer's keys or proxies, and shared transports do not leak across."""
    for name in _PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    yield
    import llmbackend.backends

    for transport in list(llmbackend.backends._shared.values()):
        transport.close()
    llmbackend.backends._shared.clear()
    for engine in list(llmbackend.backends._engines.values()):
        engine.close()
    llmbackend.backends._engines.clear()


@pytest.fixture
def emulator() -> Iterator[OpenAIEmulator]:
    server = OpenAIEmulator().start()
    yield server
    server.stop()


@pytest.fixture
def openai_env(emulator: OpenAIEmulator, monkeypatch: pytest.MonkeyPatch) -> OpenAIEmulator:
    """The emulator, wired in through the environment variables as a user would."""
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", emulator.base_url)
    return emulator


@pytest.fixture
def anthropic_emulator() -> Iterator[AnthropicEmulator]:
    # llmbackend sends the key as x-api-key, the way Anthropic documents it: nothing else passes.
    server = AnthropicEmulator(accept_bearer=False).start()
    yield server
    server.stop()


@pytest.fixture
def anthropic_env(anthropic_emulator: AnthropicEmulator, monkeypatch: pytest.MonkeyPatch
                  ) -> AnthropicEmulator:
    """The Anthropic emulator, wired in through the environment variables as a user would."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", anthropic_emulator.base_url)
    return anthropic_emulator


@pytest.fixture
def gemini_emulator() -> Iterator[GeminiEmulator]:
    # llmbackend sends the key as x-goog-api-key on every request, the upload included.
    server = GeminiEmulator(upload_requires_key=True).start()
    yield server
    server.stop()


@pytest.fixture
def gemini_env(gemini_emulator: GeminiEmulator, monkeypatch: pytest.MonkeyPatch
               ) -> GeminiEmulator:
    """The Gemini emulator, wired in through the environment variables as a user would."""
    monkeypatch.setenv("GOOGLE_API_KEY", GEMINI_KEY)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gemini_emulator.base_url)
    return gemini_emulator


# --- local models -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama model with a trained byte-level BPE tokenizer, built offline."""
    from tests.tiny_model import tiny_model_dir

    return tiny_model_dir(tmp_path_factory)


@pytest.fixture
def offline_hub(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                ) -> Callable[[str], Path]:
    """``serve(repo_id)`` puts the tiny model in an offline Hugging Face cache under that repo
    id, so that code naming a Hub model (the seed README's examples) runs as written."""
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    try:  # huggingface_hub reads these once, at import
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - installed with transformers
        pass
    else:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))

    def serve(repo_id: str) -> Path:
        org, name = repo_id.split("/")
        root = cache / f"models--{org}--{name}"
        snapshot = root / "snapshots" / ("0" * 40)
        snapshot.mkdir(parents=True, exist_ok=True)
        (root / "refs").mkdir(exist_ok=True)
        (root / "refs" / "main").write_text("0" * 40)
        for file in tiny_model.iterdir():
            shutil.copy(file, snapshot / file.name)
        return snapshot

    return serve


# --- recorded fixtures ----------------------------------------------------------------------------


def load_fixture(provider: str, name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / provider / name).read_text())  # type: ignore[no-any-return]


def fixture_names(provider: str) -> list[str]:
    return sorted(p.name for p in (FIXTURES / provider).glob("*.json"))
