"""API keys never leak: a unique key is planted per provider and looked for everywhere a user (or a
log, or a file) could see it, on success and error paths, sync calls and batches.

Where it is looked for (``Watch.check`` and ``assert_no_key``): the ``repr``, ``str``, fields
(``attrs.asdict``, which shows ``repr=False`` fields such as ``Generation.raw`` and error bodies),
formatted traceback and pickle of every object a test gets back (clients, generations, errors,
batch handles, states, statuses, counts, ``raw``); every log record at DEBUG (llmbackend, root,
httpx2, httpcore2); every warning; every spooled temporary file llmbackend writes (captured as it
is closed, and forced to disk with a tiny ``SPOOL_MEMORY``) and any file left in the temp dir.
``audit_requests`` checks the other side: the emulators saw the key in the provider's auth header
only, never in a URL or a body (uploaded batch files included).

The leaks this suite found when it was written (a downloaded result file was not scrubbed, a
credential in a custom header was not scrubbed, a key with a newline or a non-ASCII character
reached error messages through the HTTP layer's own errors) are fixed; their tests stay.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import socket
import tempfile
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import attrs
import pytest
from pydantic import BaseModel
from returns.result import Failure, Success

import llmbackend
from llmbackend import (
    BatchItemsError,
    BatchNotReadyError,
    ConfigurationError,
    HTTPStatusError,
    ProviderError,
    RequestTimeoutError,
    StructuredOutput,
    TransportError,
)
from llmbackend import backends as llmbackend_backends
from llmbackend import jobs as llm_jobs
from llmbackend.jobs import files as llm_files
from llmbackend.providers import gemini_batch
from tests import anthropic_emulator as anthropic_em
from tests import emulator as openai_em
from tests import gemini_emulator as gemini_em

OPENAI_KEY = "sk-LEAKCHECK-openai-3f9a1c7e5b2d40868e1f"
ANTHROPIC_KEY = "sk-ant-LEAKCHECK-anthropic-6e1d2c3b4a5968a0"
GEMINI_KEY = "AIza-LEAKCHECK-gemini-9b8c7d6e5f40a1b2c3"
#: Keys a client sends that the emulator does not take (the wrong-key scenarios).
WRONG_KEYS = {
    "openai": "sk-LEAKCHECK-wrong-openai-51c0de77aa90b3e2",
    "anthropic": "sk-ant-LEAKCHECK-wrong-anthropic-0b7e44c19d2f",
    "gemini": "AIza-LEAKCHECK-wrong-gemini-d41f8e2a6c3b77",
}
PROVIDERS = ("openai", "anthropic", "gemini")
SOME_BATCH_ID = {"openai": "batch_x", "anthropic": "msgbatch_x", "gemini": "batches/x"}
PROMPTS = ["Summarize: one", "Summarize: two", "Summarize: three"]
IDS = ["item-a", "item-b", "item-c"]
MASK = "********"


class City(BaseModel):
    city: str
    population: int


# --- the helper ---------------------------------------------------------------------------------


def _needles(key: str) -> tuple[str, ...]:
    # The whole key, and its head and tail: a partial mask ("sk-LEAKCHECK-op...8e1f") leaks too.
    return (key, key[:16], key[-12:])


def _views(value: object) -> Iterator[str | bytes]:
    """Every way ``value`` can be shown: str/bytes as such; else repr, str, fields, traceback
    and pickle."""
    if isinstance(value, str | bytes | bytearray):
        yield bytes(value) if isinstance(value, bytearray) else value
        return
    yield repr(value)
    yield str(value)
    if attrs.has(type(value)):
        yield repr(attrs.asdict(value, recurse=True))  # type: ignore[arg-type]
    if isinstance(value, BaseException):
        yield "".join(traceback.format_exception(value))
        yield repr(value.args)
        yield repr(vars(value))
    # Handles with locks, sockets or closures do not pickle; everything else is checked.
    with contextlib.suppress(Exception):
        yield pickle.dumps(value)


def assert_no_key(value: object, *keys: str) -> None:
    """Fail when any of ``keys`` (or its head or tail) shows in ``value``: a str or bytes as
    given, or any other object's repr, str, attrs fields, traceback (exceptions) and pickle."""
    assert keys, "name the key(s) to look for"
    for view in _views(value):
        for key in keys:
            for needle in _needles(key):
                found = (needle.encode() in view) if isinstance(view, bytes) else (needle in view)
                assert not found, (f"the key ({needle!r}) shows in "
                                   f"{type(value).__name__}: {view[:600]!r}")


# --- providers ----------------------------------------------------------------------------------


@dataclass
class Setup:
    """One provider's emulator, with the planted key, and how to script it."""

    name: str
    server: Any
    key: str
    model: str
    auth_header: str  # lower case, as the emulator records it
    env: dict[str, str]

    @property
    def auth_value(self) -> str:
        return f"Bearer {self.key}" if self.name == "openai" else self.key

    def client(self, **options: Any) -> llmbackend.Client:
        options.setdefault("api_key", self.key)
        options.setdefault("base_url", self.server.base_url)
        options.setdefault("max_retries", 0)
        return llmbackend.client(self.name, self.model, **options)

    def echo_error(self, key: str) -> tuple[int, bytes]:
        """The provider's own wrong-key error, quoting the key back (as OpenAI's does)."""
        if self.name == "openai":
            return 401, openai_em.error_body(
                f"Incorrect API key provided: {key}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error", "invalid_api_key")
        if self.name == "anthropic":
            return 401, anthropic_em.error_body(f"invalid x-api-key: {key}",
                                                "authentication_error")
        return 400, gemini_em.error_body(400, "INVALID_ARGUMENT",
                                         f"API key not valid: {key}. Please pass a valid API key.",
                                         reason="API_KEY_INVALID")

    def echo_answer(self, key: str) -> dict[str, Any]:
        """A 2xx answer whose text and body carry the key."""
        text = f"The key you sent is {key}."
        if self.name == "openai":
            return openai_em.response_body(self.model, text)
        if self.name == "anthropic":
            return anthropic_em.message_body(self.model, [{"type": "text", "text": text}])
        return gemini_em.response_body(self.model, text)

    def plan(self, *, finish_after: int = 1, failing: dict[str, str] | None = None) -> None:
        """The native batch plan: ends at the ``finish_after``-th retrieve; ``failing`` maps a
        custom id to the error message its item gets."""
        failing = failing or {}
        if self.name == "openai":
            self.server.batch_plan = openai_em.BatchPlan(finish_after=finish_after, item_errors={
                cid: (500, openai_em.error_object(message, "server_error", None))
                for cid, message in failing.items()})
        elif self.name == "anthropic":
            self.server.batch_plan = anthropic_em.MessageBatchPlan(
                finish_after=finish_after,
                item_errors={cid: ("api_error", message) for cid, message in failing.items()})
        else:
            self.server.batch_plan = gemini_em.GeminiBatchPlan(
                finish_after=finish_after,
                item_errors={cid: (500, "INTERNAL", message) for cid, message in failing.items()})

    @property
    def native(self) -> dict[str, Any]:
        return {"mode": "native"} if self.name == "anthropic" else {}


def make_setup(name: str) -> Setup:
    if name == "openai":
        server: Any = openai_em.OpenAIEmulator(api_key=OPENAI_KEY).start()
        return Setup(name, server, OPENAI_KEY, "gpt-4o-mini", "authorization",
                     {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": server.base_url})
    if name == "anthropic":
        server = anthropic_em.AnthropicEmulator(api_key=ANTHROPIC_KEY, accept_bearer=False).start()
        return Setup(name, server, ANTHROPIC_KEY, "claude-sonnet-4-5", "x-api-key",
                     {"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_BASE_URL": server.base_url})
    server = gemini_em.GeminiEmulator(api_key=GEMINI_KEY, upload_requires_key=True).start()
    return Setup(name, server, GEMINI_KEY, "gemini-2.5-flash", "x-goog-api-key",
                 {"GOOGLE_API_KEY": GEMINI_KEY, "GOOGLE_GEMINI_BASE_URL": server.base_url})


@pytest.fixture(params=PROVIDERS)
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    made = make_setup(request.param)
    yield made
    made.server.stop()


@pytest.fixture
def other_gemini() -> Iterator[gemini_em.GeminiEmulator]:
    """A second server that must never be sent anything (a foreign upload URL points at it)."""
    server = gemini_em.GeminiEmulator(api_key=None).start()
    yield server
    server.stop()


def audit_requests(setup: Setup, key: str | None = None, header: str | None = None,
                   value: str | None = None) -> None:
    """Every request the emulator saw carried ``key`` in ``header`` (the provider's auth header
    by default) as exactly ``value``, and nowhere else: not in the URL, not in the body (batch
    uploads included), not in another header."""
    key = key or setup.key
    header = header or setup.auth_header
    value = value or setup.auth_value
    assert setup.server.requests, "nothing was sent"
    for request in setup.server.requests:
        where = f"{request.method} {request.path}"
        assert_no_key(request.path, key)
        assert_no_key(unquote(request.path), key)
        assert "key=" not in request.path, where
        assert_no_key(request.body, key)
        assert request.headers.get(header) == value, where
        for name, sent in request.headers.items():
            if name != header:
                assert_no_key(sent, key)


# --- what else is watched: logs, warnings, temporary files --------------------------------------


class Watch:
    def __init__(self, caplog: pytest.LogCaptureFixture, recwarn: pytest.WarningsRecorder,
                 temp_dir: Path) -> None:
        self.caplog = caplog
        self.recwarn = recwarn
        self.temp_dir = temp_dir
        self.spooled: list[bytes] = []  # the contents of every spooled file, as it was closed
        self.rolled: list[bool] = []  # whether it had gone to disk

    def check(self, *keys: str, logged: bool = True, downloaded: bool = False) -> None:
        """No key in any log record, warning, spooled file or file left in the temp dir.

        ``downloaded``: the provider's result file quotes the key, and a download is kept byte
        for byte (bodies are never altered before they are parsed, issue 14): the spooled
        files are then not searched, but none may outlive the job (the temp dir is empty)."""
        records = self.caplog.records
        if logged:
            assert any(r.name == "llmbackend" for r in records), "no llmbackend log captured"
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        for record in records:
            assert_no_key(formatter.format(record), *keys)
            assert_no_key(repr(vars(record)), *keys)
        for warning in self.recwarn.list:
            assert_no_key(str(warning.message), *keys)
        for content in self.spooled if not downloaded else ():
            assert_no_key(content, *keys)
        if downloaded:
            assert [path for path in self.temp_dir.rglob("*") if path.is_file()] == []
        for path in self.temp_dir.rglob("*"):
            if path.is_file():
                assert_no_key(path.read_bytes(), *keys)


@pytest.fixture
def watch(caplog: pytest.LogCaptureFixture, recwarn: pytest.WarningsRecorder,
          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Watch:
    caplog.set_level(logging.DEBUG)
    for name in ("llmbackend", "httpx2", "httpcore2", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    temp_dir = tmp_path / "temp"
    temp_dir.mkdir()
    watched = Watch(caplog, recwarn, temp_dir)
    real = tempfile.SpooledTemporaryFile

    class RecordingSpool(real):  # type: ignore[valid-type, misc]
        def close(self) -> None:
            if not self.closed:
                self.seek(0)
                watched.spooled.append(self.read())
                watched.rolled.append(bool(self._rolled))
            super().close()

        def __exit__(self, *exc_info: object) -> None:
            self.close()  # the stdlib's __exit__ closes the inner file, bypassing close()

    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", RecordingSpool)
    monkeypatch.setattr(tempfile, "tempdir", str(temp_dir))
    monkeypatch.setattr(llm_files, "SPOOL_MEMORY", 64)  # every spooled file goes to disk
    return watched


def check_batch(batch: llmbackend.Batch[Any], *keys: str) -> None:
    """Every user-visible face of a batch handle."""
    for value in (batch, batch.id, batch.state(), batch.status(), batch.counts, batch.raw,
                  batch.custom_ids):
        assert_no_key(value, *keys)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- success paths ------------------------------------------------------------------------------


def test_assert_no_key_finds_the_key_in_every_view() -> None:
    error = HTTPStatusError(message="denied", provider="openai", status=401,
                            body=f"echo {OPENAI_KEY}")
    for value in (f"x {OPENAI_KEY} y", OPENAI_KEY.encode(), error, {"k": OPENAI_KEY[-12:]},
                  f"partial {OPENAI_KEY[:16]}..."):
        with pytest.raises(AssertionError, match="the key"):
            assert_no_key(value, OPENAI_KEY)
    assert_no_key(HTTPStatusError(message="denied", provider="openai", status=401), OPENAI_KEY)


def test_sync_calls_structured_outputs_and_the_typed_face(setup: Setup, watch: Watch) -> None:
    client = setup.client()
    answer = client.get_response("Hello there", {"max_tokens": 50})
    assert "Hello there" in answer
    city = client.get_response("Name a city", schema=StructuredOutput(pydantic_model=City))
    assert isinstance(city, City)
    as_json = client.get_response("Name a city", schema=StructuredOutput(schema={
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
        "additionalProperties": False}))
    generation = client.generate("Typed face").unwrap()
    structured = client.generate("Typed", schema=StructuredOutput(pydantic_model=City)).unwrap()
    for value in (client, vars(client), answer, city, as_json, generation, generation.raw,
                  generation.usage, structured, structured.raw):
        assert_no_key(value, setup.key)
    client.close()
    audit_requests(setup)
    watch.check(setup.key)


def test_top_level_calls_with_the_key_from_the_environment(
    setup: Setup, watch: Watch, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in setup.env.items():
        monkeypatch.setenv(name, value)
    answer = llmbackend.get_response(setup.name, setup.model, "From the environment",
                                     max_retries=0)
    result = llmbackend.generate(setup.name, setup.model, "Typed, from the environment",
                                 schema=StructuredOutput(pydantic_model=City), max_retries=0)
    assert isinstance(result, Success)
    for value in (answer, result, result.unwrap(), result.unwrap().raw,
                  llmbackend_backends._shared):
        assert_no_key(value, setup.key)
    audit_requests(setup)
    watch.check(setup.key)


def test_a_2xx_body_that_quotes_the_key_reaches_the_parser_intact(setup: Setup,
                                                                   watch: Watch) -> None:
    """Bodies are never altered before they are parsed (issue 14: cutting the key out of every
    body corrupted answers): an answer that quotes the key is the model's text, returned as it
    came. What llmbackend itself shows (logs, files, errors) still never holds the key."""
    setup.server.reply(200, setup.echo_answer(setup.key))
    generation = setup.client().generate("Echo my key").unwrap()
    assert generation.text == f"The key you sent is {setup.key}."
    watch.check(setup.key)


def test_immediate_batch(setup: Setup, watch: Watch) -> None:
    client = setup.client()
    batch = client.submit_batch(PROMPTS, batch_options={"mode": "immediate", "custom_ids": IDS})
    results = batch.results()
    assert len(results) == len(PROMPTS)
    for value in (results, batch.outcomes()):
        assert_no_key(value, setup.key)
    check_batch(batch, setup.key)
    audit_requests(setup)
    watch.check(setup.key)


def test_immediate_batch_item_that_quotes_the_key(setup: Setup, watch: Watch) -> None:
    status, body = setup.echo_error(setup.key)
    setup.server.reply(status, body)
    batch = setup.client().submit_batch(
        PROMPTS, batch_options={"mode": "immediate", "custom_ids": IDS, "concurrency": 1})
    with pytest.raises(BatchItemsError) as info:
        batch.results()
    (failure,) = info.value.failures
    assert isinstance(failure.error, HTTPStatusError)
    assert MASK in failure.error.message
    for value in (info.value, failure, failure.error, batch.outcomes()):
        assert_no_key(value, setup.key)
    check_batch(batch, setup.key)
    watch.check(setup.key)


def _native_batch(setup: Setup, watch: Watch, monkeypatch: pytest.MonkeyPatch,
                  gemini_mode: str) -> None:
    if gemini_mode == "file":
        monkeypatch.setattr(gemini_batch, "INLINE_LIMIT", 100)
    setup.plan()
    client = setup.client()
    batch = client.submit_batch(PROMPTS, {"max_tokens": 30},
                                batch_options={**setup.native, "custom_ids": IDS})
    assert batch.wait(poll_interval=0.01).is_terminal
    check_batch(batch, setup.key)
    results = batch.results()
    assert len(results) == len(PROMPTS)
    assert_no_key(results, setup.key)
    assert_no_key(batch.outcomes(), setup.key)
    # Resumed by id, from a client and from the top level.
    for resumed in (client.get_batch(batch.id),
                    llmbackend.get_batch(setup.name, batch.id, api_key=setup.key,
                                         base_url=setup.server.base_url, max_retries=0)):
        assert resumed.results() == results
        assert_no_key(resumed.outcomes(), setup.key)
        check_batch(resumed, setup.key)
    if setup.name == "gemini":
        assert [b.mode for b in setup.server.batches.values()] == [gemini_mode]
    audit_requests(setup)
    # The spooled input and result files went to disk, and carried no key.
    assert watch.spooled
    assert any(watch.rolled)
    watch.check(setup.key)


def test_native_batch_and_resume(setup: Setup, watch: Watch,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _native_batch(setup, watch, monkeypatch, "inline")


@pytest.mark.parametrize("setup", ["gemini"], indirect=True)
def test_gemini_file_mode_batch_and_resume(setup: Setup, watch: Watch,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _native_batch(setup, watch, monkeypatch, "file")
    assert setup.server.files  # the JSONL went through the Files API


@pytest.mark.parametrize("setup", ["anthropic"], indirect=True)
def test_anthropic_results_url_elsewhere_gets_no_key(
    setup: Setup, watch: Watch, other_gemini: gemini_em.GeminiEmulator
) -> None:
    setup.plan()
    batch = setup.client().submit_batch(PROMPTS, batch_options={"mode": "native"})
    batch.wait(poll_interval=0.01)
    (emulated,) = setup.server.batches.values()
    emulated.api_object["results_url"] = f"{other_gemini.base_url}/v1/messages/batches/x/results"
    assert len(batch.results()) == len(PROMPTS)
    assert other_gemini.requests == []
    audit_requests(setup)
    watch.check(setup.key)


@pytest.mark.parametrize("setup", ["gemini"], indirect=True)
def test_gemini_upload_url_elsewhere_gets_no_key(
    setup: Setup, watch: Watch, monkeypatch: pytest.MonkeyPatch,
    other_gemini: gemini_em.GeminiEmulator,
) -> None:
    monkeypatch.setattr(gemini_batch, "INLINE_LIMIT", 100)
    foreign = f"{other_gemini.base_url}/upload/v1beta/files?upload_id=x&upload_protocol=resumable"
    setup.server.reply(200, b"", {"x-goog-upload-status": "active", "x-goog-upload-url": foreign,
                                  "Content-Type": "text/plain"})
    with pytest.raises(ProviderError, match="nowhere else") as info:
        setup.client().submit_batch(PROMPTS)
    assert other_gemini.requests == []
    assert_no_key(info.value, setup.key)
    audit_requests(setup)
    watch.check(setup.key)


# --- error paths --------------------------------------------------------------------------------


def test_a_wrong_key(setup: Setup, watch: Watch, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = WRONG_KEYS[setup.name]
    client = setup.client(api_key=wrong)
    error = client.generate("Hello").failure()
    assert isinstance(error, HTTPStatusError)
    assert error.status == (400 if setup.name == "gemini" else 401)
    with pytest.raises(HTTPStatusError) as raised:
        client.get_response("Hello")
    with pytest.raises(HTTPStatusError) as batch_error:
        client.submit_batch(PROMPTS, batch_options=setup.native)
    for name, value in setup.env.items():
        monkeypatch.setenv(name, wrong if value == setup.key else value)
    with pytest.raises(HTTPStatusError) as top_level:
        llmbackend.get_response(setup.name, setup.model, "Hello", max_retries=0)
    with pytest.raises(HTTPStatusError) as resumed:
        llmbackend.get_batch(setup.name, SOME_BATCH_ID[setup.name], max_retries=0)
    for value in (client, error, raised.value, batch_error.value, top_level.value,
                  resumed.value):
        assert_no_key(value, wrong, setup.key)
    audit_requests(setup, key=wrong,
                   value=f"Bearer {wrong}" if setup.name == "openai" else wrong)
    watch.check(wrong, setup.key)


def test_an_error_body_that_quotes_the_key(setup: Setup, watch: Watch) -> None:
    status, body = setup.echo_error(setup.key)
    assert setup.key.encode() in body
    client = setup.client()
    setup.server.reply(status, body)
    error = client.generate("Hello").failure()
    setup.server.reply(status, body)
    with pytest.raises(HTTPStatusError) as raised:
        client.get_response("Hello")
    setup.server.reply(status, body)
    with pytest.raises(HTTPStatusError) as at_submit:
        client.submit_batch(PROMPTS, batch_options=setup.native)
    for found in (error, raised.value, at_submit.value):
        assert isinstance(found, HTTPStatusError)
        assert found.status == status
        assert MASK in found.message + (found.body or "")
        assert_no_key(found, setup.key)
        assert_no_key(pickle.loads(pickle.dumps(found)), setup.key)
    watch.check(setup.key)


def test_retries_then_an_error_that_quotes_the_key(setup: Setup, watch: Watch) -> None:
    """A retried 503 (the INFO retry log line) that ends in an echoed key."""
    _, body = setup.echo_error(setup.key)
    for _ in range(2):
        setup.server.reply(503, body, {"retry-after-ms": "1"})
    error = setup.client(max_retries=1).generate("Hello").failure()
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.attempts) == (503, 2)
    assert any(r.levelno == logging.INFO and "retrying" in r.getMessage()
               for r in watch.caplog.records)
    assert_no_key(error, setup.key)
    watch.check(setup.key)


def test_a_timeout_with_a_retry(setup: Setup, watch: Watch) -> None:
    for _ in range(3):  # two attempts of the first call, one of the second
        setup.server.reply(200, setup.echo_answer(setup.key), delay=0.6)
    client = setup.client(timeout=0.15, max_retries=1)
    error = client.generate("Slow").failure()
    assert isinstance(error, RequestTimeoutError)
    assert error.attempts == 2
    assert any("retrying" in r.getMessage() for r in watch.caplog.records)
    with pytest.raises(RequestTimeoutError) as raised:
        setup.client(timeout=0.15).get_response("Slow")
    for value in (error, raised.value):
        assert_no_key(value, setup.key)
    watch.check(setup.key)


def test_a_connection_error(setup: Setup, watch: Watch) -> None:
    base_url = f"http://127.0.0.1:{closed_port()}"
    client = setup.client(base_url=base_url, max_retries=1)
    error = client.generate("Nobody listens").failure()
    assert type(error) is TransportError
    assert error.attempts == 2
    with pytest.raises(TransportError) as raised:
        client.submit_batch(PROMPTS, batch_options=setup.native)
    for value in (client, error, raised.value):
        assert_no_key(value, setup.key)
    watch.check(setup.key)


def test_batch_not_ready(setup: Setup, watch: Watch) -> None:
    setup.plan(finish_after=50)
    batch = setup.client().submit_batch(PROMPTS, batch_options=setup.native)
    with pytest.raises(BatchNotReadyError) as early:
        batch.results()
    with pytest.raises(BatchNotReadyError) as waited:
        batch.wait(poll_interval=0.01, timeout=0.03)
    outcome = batch._job.collect(llm_jobs.keep_whole)
    for value in (early.value, waited.value, outcome):
        assert_no_key(value, setup.key)
    check_batch(batch, setup.key)
    watch.check(setup.key)


def test_batch_items_error(setup: Setup, watch: Watch) -> None:
    setup.plan(failing={"item-b": "The server had an error processing item-b."})
    batch = setup.client().submit_batch(PROMPTS,
                                        batch_options={**setup.native, "custom_ids": IDS})
    batch.wait(poll_interval=0.01)
    with pytest.raises(BatchItemsError) as info:
        batch.results()
    assert [f.custom_id for f in info.value.failures] == ["item-b"]
    for value in (info.value, info.value.failures, batch.outcomes()):
        assert_no_key(value, setup.key)
    check_batch(batch, setup.key)
    audit_requests(setup)
    watch.check(setup.key)


@pytest.mark.parametrize(("setup", "gemini_mode"), [
    pytest.param("openai", "inline"),  # a downloaded output / error file
    pytest.param("anthropic", "inline"),  # a downloaded results file
    pytest.param("gemini", "inline"),  # inline results come in a scrubbed JSON response
    pytest.param("gemini", "file"),  # a downloaded responses file
], indirect=["setup"])
def test_a_batch_result_that_quotes_the_key(setup: Setup, gemini_mode: str, watch: Watch,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    if gemini_mode == "file":
        monkeypatch.setattr(gemini_batch, "INLINE_LIMIT", 100)
    setup.plan(failing={"item-b": f"Incorrect API key provided: {setup.key}"})
    batch = setup.client().submit_batch(PROMPTS,
                                        batch_options={**setup.native, "custom_ids": IDS})
    batch.wait(poll_interval=0.01)
    with pytest.raises(BatchItemsError) as info:
        batch.results()
    assert [f.custom_id for f in info.value.failures] == ["item-b"]
    outcomes = batch.outcomes()
    assert isinstance(outcomes[1], Failure)
    assert MASK in outcomes[1].failure().message
    assert_no_key(outcomes, setup.key)
    assert_no_key(info.value, setup.key)
    downloaded = setup.name != "gemini" or gemini_mode == "file"
    if downloaded:  # the result file reached the parser as it came, the key in it included
        assert any(setup.key.encode() in content for content in watch.spooled)
    watch.check(setup.key, downloaded=downloaded)


# --- keys in odd places -------------------------------------------------------------------------


def test_a_key_in_a_custom_header_stays_out_of_reprs(setup: Setup, watch: Watch) -> None:
    """A gateway at base_url that takes its credential in a custom header, with no api_key."""
    setup.server.api_key = None
    client = llmbackend.client(setup.name, setup.model, base_url=setup.server.base_url,
                               headers={"X-Api-Key": setup.key}, max_retries=0)
    assert_no_key(client, setup.key)
    assert_no_key(vars(client), setup.key)
    generation = client.generate("Through the gateway").unwrap()
    assert_no_key(generation, setup.key)
    audit_requests(setup, header="x-api-key", value=setup.key)
    watch.check(setup.key)


def test_a_key_in_a_custom_header_quoted_back_is_scrubbed(setup: Setup, watch: Watch) -> None:
    setup.server.api_key = None
    status, body = setup.echo_error(setup.key)
    setup.server.reply(status, body)
    client = llmbackend.client(setup.name, setup.model, base_url=setup.server.base_url,
                               headers={"X-Api-Key": setup.key}, max_retries=0)
    error = client.generate("Through the gateway").failure()
    assert isinstance(error, HTTPStatusError)
    assert_no_key(error, setup.key)
    watch.check(setup.key)


@pytest.mark.parametrize("suffix", ["\n", " ", "\u2019", "\x00"],
                         ids=["newline", "space", "curly-quote", "nul"])
def test_a_malformed_key_is_refused_at_once_without_repeating_it(
    setup: Setup, watch: Watch, suffix: str
) -> None:
    """A key read from a file with its newline, or pasted with a curly quote, would be refused
    by the HTTP layer with an error that quotes it: it is refused before, in words."""
    with pytest.raises(ConfigurationError) as raised:
        setup.client(api_key=setup.key + suffix)
    assert raised.value.key == "api_key"
    assert "strip it" in str(raised.value)
    assert_no_key(raised.value, setup.key)
    watch.check(setup.key, logged=False)


@pytest.mark.parametrize("options", [
    {"apikey": OPENAI_KEY},  # misspelled option
    {"api_key": OPENAI_KEY.encode()},  # not a string
    {"api_key": OPENAI_KEY, "base_url": "127.0.0.1:8080"},  # no scheme
    {"api_key": OPENAI_KEY, "headers": {"X-Api-Key": OPENAI_KEY, "X-Count": 3}},
    {"api_key": OPENAI_KEY, "timeout": -1},
    {"api_key": OPENAI_KEY, "drop_unsupported_params": "yes"},
])
def test_configuration_errors_do_not_repeat_the_key(options: dict[str, Any],
                                                    watch: Watch) -> None:
    with pytest.raises(ConfigurationError) as raised:
        llmbackend.client("openai", "gpt-4o-mini", **options)
    assert_no_key(raised.value, OPENAI_KEY)
    watch.check(OPENAI_KEY, logged=False)



# --- issue 14: bodies are parsed as they came; what is shown is redacted after decoding ---------

#: Dummy keys local servers take (vLLM, Ollama...): too short to tell from text, never looked for.
DUMMY_KEYS = ["x", "1", "token", "EMPTY", "none", "te"]


@pytest.mark.parametrize("setup", ["openai", "anthropic"], indirect=True)
@pytest.mark.parametrize("dummy", DUMMY_KEYS)
def test_a_dummy_key_leaves_answers_intact(setup: Setup, dummy: str) -> None:
    """Cutting a key such as ``x`` out of every body turned ``"text"`` into ``"te********t"``
    (an empty answer), ``1`` into a parse error and ``token`` into lost usage."""
    expected = setup.client().generate("Hello there, the text is 1 token").unwrap()
    setup.server.api_key = dummy
    client = setup.client(api_key=dummy)
    generation = client.generate("Hello there, the text is 1 token").unwrap()
    assert generation.text == expected.text
    assert "Hello there" in generation.text
    assert generation.usage == expected.usage
    assert (generation.usage.input_tokens or 0) > 0


@pytest.mark.parametrize("dummy", ["x", "1", "token"])
def test_a_dummy_key_leaves_downloaded_results_intact(dummy: str) -> None:
    """A downloaded batch result file reaches the parser byte for byte."""
    server = openai_em.OpenAIEmulator(api_key=dummy).start()
    try:
        server.batch_plan = openai_em.BatchPlan(finish_after=1)
        client = llmbackend.client("openai", "gpt-4o-mini", api_key=dummy,
                                   base_url=server.base_url, max_retries=0)
        batch = client.submit_batch(PROMPTS, {"max_tokens": 30}, batch_options={"custom_ids": IDS})
        batch.wait(poll_interval=0.01)
        outcomes = batch.outcomes()
        assert all(isinstance(outcome, Success) for outcome in outcomes), outcomes
        for prompt, outcome in zip(PROMPTS, outcomes, strict=True):
            assert prompt in outcome.unwrap().text
            assert (outcome.unwrap().usage.output_tokens or 0) > 0
    finally:
        server.stop()


def _escaped(key: str) -> str:
    """The key as a server may JSON-escape it: ``-`` as ``\\u002d``, ``/`` as ``\\/``."""
    return key.replace("-", "\\u002d").replace("/", "\\/")


#: A key with a ``/`` (some gateways' tokens have one), so that ``\/`` is exercised.
SLASH_KEY = "sk-LEAKCHECK/slash-7c1e9a2b4d6f8e0a1c3b"


def _escaped_error(setup: Setup, key: str) -> tuple[int, bytes]:
    status, body = setup.echo_error(key)
    assert key.encode() in body
    return status, body.replace(key.encode(), _escaped(key).encode())


@pytest.mark.parametrize("key", [None, SLASH_KEY], ids=["planted", "slash"])
def test_an_error_body_that_quotes_the_key_json_escaped(setup: Setup, watch: Watch,
                                                        key: str | None) -> None:
    """Scrubbing raw bytes missed ``sk\\u002d...``: the decoded message showed the key."""
    key = key or setup.key
    if key != setup.key:
        setup.server.api_key = key
    status, body = _escaped_error(setup, key)
    assert key.encode() not in body
    client = setup.client(api_key=key)
    setup.server.reply(status, body)
    error = client.generate("Hello").failure()
    setup.server.reply(status, body)
    with pytest.raises(HTTPStatusError) as raised:
        client.get_response("Hello")
    setup.server.reply(status, body)
    batch = client.submit_batch(PROMPTS, batch_options={"mode": "immediate", "custom_ids": IDS,
                                                        "concurrency": 1})
    with pytest.raises(BatchItemsError) as items:
        batch.results()
    for found in (error, raised.value, items.value.failures[0].error):
        assert isinstance(found, HTTPStatusError)
        assert found.status == status
        assert MASK in found.message
        assert "LEAKCHECK" not in found.message + (found.body or "")
    for value in (error, raised.value, items.value, batch.outcomes()):
        assert_no_key(value, key)
        assert_no_key(pickle.loads(pickle.dumps(value)), key)
    watch.check(key)


def test_the_cli_never_prints_a_json_escaped_key(tmp_path: Path) -> None:
    import subprocess
    import sys

    setup = make_setup("openai")
    try:
        status, body = _escaped_error(setup, setup.key)
        setup.server.reply(status, body)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OPENAI_API_KEY": setup.key,
               "OPENAI_BASE_URL": setup.server.base_url, "LLMBACKEND_STATE_DIR": str(tmp_path)}
        done = subprocess.run([sys.executable, "-m", "llmbackend", "run", "-p", "openai", "-m",
                               "gpt-4o-mini", "--max-retries", "0", "Hello"],
                              check=False, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0, done.stdout
        assert "HTTPStatusError" in done.stderr and MASK in done.stderr, done.stderr
        assert_no_key(done.stderr + done.stdout, setup.key)
    finally:
        setup.server.stop()


def test_a_key_echoed_in_a_response_header_stays_out_of_every_log(setup: Setup,
                                                                  watch: Watch) -> None:
    """httpcore2 logs each response's headers verbatim at DEBUG: the transport's filter on the
    HTTP libraries' loggers redacts the key (the root logger at DEBUG, as a user would set)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        setup.server.reply(200, setup.echo_answer("no key here"),
                           {"X-Echo-Key": setup.key, "X-Echo-Escaped": _escaped(setup.key),
                            "Content-Type": "application/json"})
        assert setup.client().generate("Hello").unwrap().text
    finally:
        root.setLevel(level)
    headers = [r for r in watch.caplog.records if "receive_response_headers.complete"
               in r.getMessage()]
    assert headers and all("X-Echo-Key" in r.getMessage() for r in headers)
    assert any(MASK in r.getMessage() for r in headers)
    watch.check(setup.key)
