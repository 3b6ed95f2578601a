"""Every code example of the documentation runs: each ```python block of every ``docs/**/*.md``
page, in order, one namespace per page (a page is one story), against the loopback emulators.

- **Every page is found by a glob**, so a new page is covered as soon as it exists. A page with a
  setup in ``SETUPS`` gets its own: planted failures, batch plans, and assertions on what its
  examples computed (a value, a line printed, a request the emulator received). Any other page
  runs with the default setup: all three emulators wired in through the environment variables
  (as a user would), batches that have ended at their first status check, and a failure for any
  example that raises.
- **Only ```python (or ```py) blocks run.** Every other fence must be one the site shows without
  running (``SHOWN``): shell blocks are command-line examples (the command line's tests run those),
  ```text blocks are output or old-library code. An unknown or missing language fails
  ``test_every_code_block_is_run_or_shown``.
- **Servers on localhost.** An example that points ``base_url`` at a local OpenAI-compatible
  server (``http://localhost:8000/v1`` for vLLM, ``11434`` for Ollama, ``8080`` for llama.cpp)
  runs against a second OpenAI emulator (the same Responses API, with no key checked, as such a
  server by default): the test rewrites exactly those URLs in the block, and nothing else.
- **Local models.** An example naming a local provider and a Hub model
  (``llmbackend.client("transformers", "Qwen/...")``) gets the tiny test model, installed under
  that repo id in an offline Hugging Face cache (``offline_hub``); such a page is marked
  ``runtime`` and skipped where that runtime is not installed.

Failures are planted in the OpenAI emulator per prompt (``Plants``), so that the examples' failure
paths run too. (They are planted in the emulator itself rather than through
``tests.faults.FaultServer``, whose forwarding drops connections at the examples' concurrency.)
"""

from __future__ import annotations

import ast
import importlib.util
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from returns.pipeline import is_successful
from returns.result import Success

import llmbackend
from tests import emulator as openai_emulator
from tests.anthropic_emulator import AnthropicEmulator, MessageBatchPlan
from tests.conftest import ROOT
from tests.emulator import (
    BatchPlan,
    OpenAIEmulator,
    Recorded,
    Scripted,
    error_body,
    response_body,
)
from tests.gemini_emulator import GeminiBatchPlan, GeminiEmulator
from tests.gemini_emulator import response_body as gemini_response

DOCS = ROOT / "docs"
PAGES = sorted(path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md"))
MODEL = "gpt-4o-mini"

#: Fence languages that run, and those the site only shows.
RUN = frozenset({"python", "py", "python3"})
SHOWN = frozenset({"bash", "console", "sh", "shell", "shell-session", "text", "output", "json",
                   "jsonl", "yaml", "toml", "ini", "diff"})
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*?)[ \t]*$")
#: A local OpenAI-compatible server (vLLM, Ollama, llama.cpp) in an example's ``base_url``.
LOCAL_SERVER = re.compile(r"http://(?:localhost|127\.0\.0\.1):\d+/v1")
#: A local provider and the Hub model an example names, e.g. ``client("mlx", "org/name"``.
LOCAL_MODEL = re.compile(r"""(?:provider=)?["'](transformers|vllm|mlx)["'],\s*(?:model=)?"""
                         r"""["']([\w.-]+/[\w.-]+)["']""")
RUNTIME_MODULES = {"transformers": "transformers", "vllm": "vllm", "mlx": "mlx_lm"}


# --- the pages' code blocks -----------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    language: str  # the info string's first word, lower case ("" when there is none)
    code: str


def code_blocks(page: str) -> list[Block]:
    """Every fenced block of a page (indented ones too, e.g. in tabs or lists), dedented."""
    found: list[Block] = []
    lines = (DOCS / page).read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        words = opening["info"].strip("{}. ").split()
        body: list[str] = []
        start = index + 1
        index += 1
        while index < len(lines):
            closing = FENCE.match(lines[index])
            if closing and closing["fence"].startswith(fence) and not closing["info"]:
                break
            line = lines[index]
            body.append(line[indent:] if line[:indent] == opening["indent"] else line.lstrip())
            index += 1
        found.append(Block(page, start, words[0].lower() if words else "",
                           "\n".join(body) + "\n"))
        index += 1
    return found


def python_blocks(page: str) -> list[Block]:
    return [block for block in code_blocks(page) if block.language in RUN]


def local_models(page: str) -> set[tuple[str, str]]:
    """The (local provider, Hub model) pairs the page's examples name."""
    return {(provider, model) for block in python_blocks(page)
            for provider, model in LOCAL_MODEL.findall(block.code)}


class Printed(list[tuple[Any, ...]]):
    """The pages' ``print``: prints, and keeps the arguments of each call (the captured output
    also holds whatever the local runtimes log)."""

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.append(args)
        print(*args, **kwargs)


def run_page(page: str, namespace: dict[str, Any], before: dict[str, Callable[[], object]],
             local_server: str) -> None:
    """Run the page's python blocks in order in ``namespace``; ``before[text]()`` runs just
    before the first block that contains ``text`` (to plant a failure for that block only).
    A traceback names the page and its own line numbers."""
    hooks = dict(before)
    for block in python_blocks(page):
        for text in [text for text in hooks if text in block.code]:
            hooks.pop(text)()
        # A server on localhost is the second OpenAI emulator: only its URL changes.
        code = "\n" * block.line + LOCAL_SERVER.sub(local_server, block.code)
        exec(compile(code, f"docs/{page}", "exec"), namespace)
    assert not hooks, f"no block of {page} contains {sorted(hooks)}"


# --- planted replies ------------------------------------------------------------------------------


def echo(prompt: str) -> str:
    """What the emulated models answer to a plain prompt."""
    return f"Echo: {prompt}"


def rejected(times: int = 1) -> list[Scripted]:
    """``times`` 400s, which are never retried."""
    return [Scripted(400, error_body("The prompt was rejected.", "invalid_request_error",
                                     "invalid_prompt"))] * times


def overloaded(times: int) -> list[Scripted]:
    """``times`` 503s that ask for a retry after 1 ms."""
    return [Scripted(503, error_body("The server is overloaded.", "server_error", None),
                     {"retry-after-ms": "1"})] * times


def rate_limited(times: int) -> list[Scripted]:
    """``times`` 429s without a Retry-After."""
    return [Scripted(429, error_body("Rate limit reached.", "requests",
                                     "rate_limit_exceeded"))] * times


def answer(text: str, **fields: Any) -> Scripted:
    """A 200 with a Responses object whose text is ``text`` (``fields``: status, output...)."""
    return Scripted(200, json.dumps(response_body(MODEL, text, **fields)).encode())


def truncated(text: str) -> Scripted:
    """An answer cut off by the token limit after ``text``."""
    return answer(text, status="incomplete", incomplete_reason="max_output_tokens")


class Plants:
    """Replies planted in the OpenAI emulators for the requests whose prompt holds a text: each
    serves one request, in the order planted; every other request gets the emulator's answer."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._planted: list[tuple[bytes, Scripted]] = []
        self._lock = threading.Lock()
        emulated = OpenAIEmulator.answer

        def planted_first(emulator: OpenAIEmulator, recorded: Recorded) -> Scripted:
            with self._lock:
                for index, (text, reply) in enumerate(self._planted):
                    if text in recorded.body:
                        del self._planted[index]
                        return reply
            return emulated(emulator, recorded)

        monkeypatch.setattr(OpenAIEmulator, "answer", planted_first)

    def __call__(self, text: str, replies: list[Scripted]) -> None:
        needle = json.dumps(text)[1:-1].encode()  # as the text appears in a JSON body
        with self._lock:
            self._planted.extend((needle, reply) for reply in replies)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._planted)


# --- what a page's setup gets ---------------------------------------------------------------------


@dataclass
class Docs:
    """Everything a page's setup may prepare or check."""

    openai: OpenAIEmulator
    local_server: OpenAIEmulator  # "vLLM's server on localhost:8000" and the like
    anthropic: AnthropicEmulator
    gemini: GeminiEmulator
    plant: Plants
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    caplog: pytest.LogCaptureFixture
    tmp_path: Path
    naps: list[float] = field(default_factory=list)
    printed: Printed = field(default_factory=Printed)  # the arguments of each print() call

    def no_waiting(self) -> list[float]:
        """``time.sleep`` returns at once (the examples' waits, without the waiting); the
        waits asked for are recorded in ``naps``."""
        self.monkeypatch.setattr(time, "sleep", self.naps.append)
        return self.naps

    def out(self) -> str:
        """What the examples printed since the last call."""
        return self.capsys.readouterr().out

    def sent(self, emulator: OpenAIEmulator | None = None, text: str = "") -> list[Any]:
        """The Responses API bodies an OpenAI emulator received whose input (a prompt, or the
        texts of a conversation's input items) holds ``text``."""
        return [request.json() for request in (emulator or self.openai).requests
                if request.path == "/v1/responses" and text in input_text(request.json())]


def input_text(body: dict[str, Any]) -> str:
    """The text of a Responses API body's ``input``: the prompt, or its items' texts."""
    given = body["input"]
    return given if isinstance(given, str) else "\n".join(item["content"] for item in given)


#: A page's setup: prepares the emulators, yields the hooks to run before given blocks
#: (``{text in the block: hook}``), is sent the page's namespace, and checks it.
Hooks = Generator[dict[str, Callable[[], object]], dict[str, Any], None]
Setup = Callable[[Docs], Hooks]
SETUPS: dict[str, tuple[int, Setup]] = {}


def setup(page: str, *, blocks: int) -> Callable[[Setup], Setup]:
    """Register the setup of ``page``, which has ``blocks`` python blocks."""

    def register(function: Setup) -> Setup:
        SETUPS[page] = (blocks, function)
        return function

    return register


def batches_end_at_once(docs: Docs) -> None:
    """Every provider's batch has ended when it is created, so no ``wait()`` ever sleeps."""
    docs.openai.batch_plan = BatchPlan(finish_after=0)
    docs.anthropic.batch_plan = MessageBatchPlan(finish_after=0)
    docs.gemini.batch_plan = GeminiBatchPlan(finish_after=0)


def default_setup(docs: Docs) -> Hooks:
    """A page without a setup of its own: the examples run, and nothing they do may fail."""
    batches_end_at_once(docs)
    yield {}


# --- the test -------------------------------------------------------------------------------------


def _marks(page: str) -> list[pytest.MarkDecorator]:
    providers = {provider for provider, _ in local_models(page)}
    if not providers:
        return []
    missing = sorted(RUNTIME_MODULES[provider] for provider in providers
                     if importlib.util.find_spec(RUNTIME_MODULES[provider]) is None)
    return [pytest.mark.runtime, *([pytest.mark.skip(reason=f"{', '.join(missing)} not "
                                                     "installed")] if missing else [])]


@pytest.fixture
def local_server() -> Iterator[OpenAIEmulator]:
    server = OpenAIEmulator(api_key=None).start()
    yield server
    server.stop()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The pages configure logging: put the root handlers and llmbackend's level back."""
    root, ours = logging.getLogger(), logging.getLogger("llmbackend")
    handlers, level = list(root.handlers), ours.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    ours.setLevel(level)


@pytest.fixture
def docs(*, openai_env: OpenAIEmulator, local_server: OpenAIEmulator,
         anthropic_env: AnthropicEmulator, gemini_env: GeminiEmulator, restore_logging: None,
         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
         caplog: pytest.LogCaptureFixture, tmp_path: Path) -> Docs:
    monkeypatch.chdir(tmp_path)  # pages write files (squares.jsonl, batch.json...)
    return Docs(openai_env, local_server, anthropic_env, gemini_env, Plants(monkeypatch),
                monkeypatch, capsys, caplog, tmp_path)


@pytest.mark.parametrize("page", [pytest.param(page, id=page, marks=_marks(page))
                                  for page in PAGES])
def test_page_examples_run(page: str, docs: Docs, offline_hub: Callable[[str], Path]) -> None:
    for _, model in local_models(page):  # the tiny model answers under the Hub names
        offline_hub(model)
    steps = SETUPS.get(page, (0, default_setup))[1](docs)
    namespace: dict[str, Any] = {"__name__": "docs_" + re.sub(r"\W", "_", page.removesuffix(".md")),
                                 "print": docs.printed}
    try:
        run_page(page, namespace, next(steps), docs.local_server.base_url)
        try:
            steps.send(namespace)
        except StopIteration:
            pass
        else:
            pytest.fail("a page's setup yields once")
        assert docs.plant.pending == 0, "every planted reply was asked for"
    finally:  # a local model is let go (vLLM takes one per process), pools are closed
        for value in namespace.values():
            if isinstance(value, llmbackend.Client):
                value.close()


def test_every_code_block_is_run_or_shown() -> None:
    unknown = [f"docs/{block.page}:{block.line}: ```{block.language}" for page in PAGES
               for block in code_blocks(page) if block.language not in RUN | SHOWN]
    assert not unknown, f"blocks that neither run nor are known to be shown only: {unknown}"


def test_the_setups_know_their_pages() -> None:
    for page, (count, _) in SETUPS.items():
        assert page in PAGES, f"docs/{page} is gone: drop its setup"
        assert len(python_blocks(page)) == count, \
            f"docs/{page}: a python block was added or removed: update its setup"


def test_no_docstring_holds_an_example() -> None:
    """The reference pages render the docstrings: an example there would not run here."""
    for path in sorted((ROOT / "llmbackend").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node) or ""
                assert "```" not in doc and ">>>" not in doc, \
                    f"{path.relative_to(ROOT)}: an example in the docstring of line " \
                    f"{getattr(node, 'lineno', 1)}: make it a docs page's example"


# --- the pages ------------------------------------------------------------------------------------


@setup("quickstart.md", blocks=6)
def _quickstart(docs: Docs) -> Hooks:
    batches_end_at_once(docs)
    page = yield {  # "When things go wrong": the answer is cut off, the partial text kept
        "except llmbackend.TruncationError": lambda: docs.plant("...", [truncated("Once")])}
    assert page["text"] == "Once"
    assert page["a"] == echo("Translate to German: Hello world")
    assert page["summary"].title == "example" and page["summary"].tags == ["example"]
    assert page["answers"] == [echo("Translate to German: Hello"),
                               echo("Translate to German: Thanks")]
    sent = docs.sent()
    assert sent[0]["temperature"] == 0.7 and sent[0]["max_output_tokens"] == 100
    assert sent[2]["temperature"] == 0
    # printed: the batch's id, then the local model's answers to its batch of two prompts
    ((batch_id,), (local,)) = docs.printed
    assert batch_id == page["batch"].id and batch_id.startswith("batch_")
    assert len(local) == 2 and all(isinstance(text, str) for text in local)
    assert page["local"].provider == "transformers"


@setup("configuration.md", blocks=0)
def _configuration(docs: Docs) -> Hooks:
    yield {}


@setup("design.md", blocks=0)
def _design(docs: Docs) -> Hooks:
    yield {}


@setup("structured-outputs.md", blocks=1)
def _structured_outputs(docs: Docs) -> Hooks:
    page = yield {}
    assert isinstance(page["summary"], page["Summary"])
    assert page["summary"].title == "example"
    assert page["data"] == {"title": "example", "tags": ["example"]}  # the JSON value
    by_model, by_schema = (body["text"]["format"] for body in docs.sent())
    assert by_model["name"] == "Summary" and by_model["strict"] is True  # adapted to strict
    assert by_schema["schema"] == page["summary_schema"]  # a dict schema is sent as written
    assert by_schema["strict"] is True  # it follows strict mode's rules already
    assert (page["named"].name, page["named"].strict) == ("summary", True)


@setup("errors.md", blocks=2)
def _errors(docs: Docs) -> Hooks:
    # the answer misses "capital" (an OutputError); then, on the typed face, it is cut off
    docs.plant("The capital of France, as JSON.", [answer('{"city": "Paris"}'),
                                                    truncated("The capital of France is")])
    page = yield {}
    assert page["answer"] is None
    logged = [record.getMessage() for record in docs.caplog.records if record.name == "myapp"]
    assert len(logged) == 1 and logged[0].startswith("unusable answer: ")
    assert "does not match the schema 'response' at $.capital" in logged[0]
    assert page["text"] == Success("The capital of France is")  # lash kept the partial text


@setup("typed-face.md", blocks=4)
def _typed_face(docs: Docs) -> Hooks:
    batches_end_at_once(docs)
    page = yield {}
    out = docs.out()
    assert page["text_result"].unwrap().text == echo("Say hello")
    assert page["summary"].title == "example" and page["title"] == "example"
    assert page["titles"] == Success("example")
    # the typed batch: every outcome a Summary, printed beside its prompt
    assert f"{page['prompts'][0]} example\n{page['prompts'][1]} example\n" in out
    # your own transport: build -> send (httpx2, to the emulator) -> parse -> validate
    assert (page["wire"].method, page["wire"].path) == ("POST", "/responses")
    assert page["result"].unwrap().text == echo("Say hello")
    assert docs.sent()[-1] == {"model": MODEL, "input": "Say hello", "temperature": 0.2}


@setup("batches.md", blocks=6)
def _batches(docs: Docs) -> Hooks:
    naps = docs.no_waiting()
    docs.openai.batch_plan = BatchPlan(finish_after=3)  # validating, in_progress, finalizing
    page = yield {}
    out = docs.out()
    hello = [echo("Translate to German: Hello world"), echo("Translate to German: How are you?")]
    assert naps == [30, 30]  # wait() polled every 30 s until the batch had ended
    uploaded = next(f for f in docs.openai.files.values() if f.purpose == "batch")
    lines = uploaded.lines()
    assert [line["custom_id"] for line in lines] == ["hello", "how"]
    assert all(line["body"]["max_output_tokens"] == 100 for line in lines)
    # printed: the id, the results (block 1), a progress line, then the results again twice:
    # resumed from the id alone, and restored from the saved handle
    assert out.count(str(hello)) == 3 and page["batch_id"] in out
    assert "completed 2" in out
    assert page["status"] == "completed" and page["status"].is_terminal
    assert page["answers"] == dict(zip(["hello", "how"], hello, strict=True))
    saved = (docs.tmp_path / "batch.json").read_text()
    assert page["batch_id"] in saved and "sk-" not in saved and "127.0.0.1" not in saved


@setup("anthropic.md", blocks=5)
def _anthropic(docs: Docs) -> Hooks:
    batches_end_at_once(docs)
    page = yield {}
    out = docs.out()
    assert out.startswith(echo("Write a haiku about oceans.") + "\n")
    sent = [request.json() for request in docs.anthropic.requests
            if request.path == "/v1/messages"]
    assert sent[0]["max_tokens"] == 200
    assert (page["city"].city, page["city"].population) == ("example", 7)
    assert "output_config" in sent[1]  # native structured outputs
    assert sent[2]["tool_choice"]["type"] == "tool"  # the forced-tool fallback
    assert "['Echo: One', 'Echo: Two', 'Echo: Three']" in out  # the immediate batch
    assert page["answers"] == [echo(prompt) for prompt in page["prompts"]]  # the native one
    (batch,) = docs.anthropic.batches.values()
    assert [request["custom_id"] for request in batch.requests] == ["minutes", "report"]
    assert page["batch"].id == batch.id and batch.id in out


@setup("gemini.md", blocks=2)
def _gemini(docs: Docs) -> Hooks:
    batches_end_at_once(docs)
    page = yield {}
    out = docs.out()
    assert out.startswith(echo("Write a haiku about oceans.") + "\n")
    first = docs.gemini.requests[0].json()
    assert first["systemInstruction"]["parts"][0]["text"] == "You are a poet."
    assert page["summaries"] == [echo(prompt) for prompt in page["prompts"]]
    assert page["batch"].id.startswith("batches/") and page["batch"].id in out


@setup("transformers.md", blocks=1)
def _transformers(docs: Docs) -> Hooks:
    page = yield {}
    ((haiku,), (answers,)) = docs.printed
    assert isinstance(haiku, str)
    # one answer per prompt, from one batched call: a completed handle at once
    assert len(answers) == 3 and all(isinstance(text, str) for text in answers)
    assert page["batch"].status() == "completed"


@setup("vllm.md", blocks=1)
def _vllm(docs: Docs) -> Hooks:
    page = yield {}
    assert page["client"].provider == "vllm"
    ((text,),) = docs.printed
    assert isinstance(text, str) and "\n" not in text  # stop=["\n"]


@setup("mlx.md", blocks=1)
def _mlx(docs: Docs) -> Hooks:
    page = yield {}
    ((answers,),) = docs.printed
    assert len(answers) == 2 and all(isinstance(text, str) for text in answers)
    assert page["client"].provider == "mlx"


@setup("fan-out.md", blocks=8)
def _fan_out(docs: Docs) -> Hooks:
    docs.plant("Too loud to talk.", rejected())
    # question 3 fails in the streaming example, then again where the loop stops at a failure
    docs.plant("What is 3 squared?", rejected(2))
    page = yield {}
    out = docs.out()
    labels = [echo(prompt) for prompt in page["prompts"]]
    # each result at its own input's place, the failure included
    assert page["labels"] == [labels[0], labels[1], None, labels[3]]
    assert "'Too loud to talk.' failed: OpenAI answered HTTP 400" in out
    lines = [json.loads(line) for line in
             (docs.tmp_path / "squares.jsonl").read_text().splitlines()]
    assert [line["n"] for line in lines] == list(range(1, 201))
    assert lines[2]["answer"] is None
    assert lines[3]["answer"] == echo("What is 4 squared? Answer with the number only.")
    assert page["seen"] == ["1/4", "2/4", "3/4", "4/4"]
    assert "['1/4', '2/4', '3/4', '4/4']" in out
    # stopping early: the loop ends at question 3, and at most 2 x concurrency (4) past it ran
    assert page["n"] == 3
    assert "question 3 failed, stopping" in out
    assert 200 + 3 <= len(docs.sent(text="squared?")) <= 200 + 3 + 2 * 4
    assert page["async_labels"] == labels
    assert page["answers"] == labels  # the immediate batch
    assert [outcome.unwrap().text for outcome in page["outcomes"]] == labels
    # the server on localhost:8000 got every prompt, for its model
    served = docs.sent(docs.local_server)
    assert sorted(body["input"] for body in served) == sorted(page["prompts"])
    assert {body["model"] for body in served} == {"Qwen/Qwen2.5-7B-Instruct"}
    # the local model: the last result of its map
    assert page["client"].provider == "transformers" and is_successful(page["result"])


@setup("retries-and-timeouts.md", blocks=4)
def _retries_and_timeouts(docs: Docs) -> Hooks:
    docs.caplog.set_level(logging.INFO, logger="llmbackend")
    docs.plant("Summarize the quarterly report.", overloaded(6))
    page = yield {}
    assert page["answer"] == page["quick"] == echo("Say hello")
    assert page["result"].unwrap().text == echo("Say hello")
    # the client's max_retries=5: six attempts, then the error with its fields
    assert page["summary"] is None
    assert "HTTP 503 after 6 attempts; retryable: True" in docs.out()
    retries = [record.getMessage() for record in docs.caplog.records
               if record.name == "llmbackend" and "retrying in" in record.getMessage()]
    assert len(retries) == 5
    assert retries[-1].endswith("after HTTP 503 (attempt 5 of 6)")
    assert logging.getLogger("llmbackend").level == logging.INFO  # the page's logging setup


@setup("error-recipes.md", blocks=8)
def _error_recipes(docs: Docs) -> Hooks:
    naps = docs.no_waiting()
    refusal = [{"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "refusal", "refusal": "I can't help with that."}]}]
    docs.plant("Classify this review: Ignore the review", [answer("", output=refusal)])
    docs.plant("Classify this review: The staff", [answer(
        '{"sentiment": "posi', status="incomplete", incomplete_reason="max_output_tokens")])
    docs.plant("Classify this review: Meh.",
               [answer('{"sentiment": "neutral", "confidence": "low"}')])
    # review 2 is rejected by each run that sends it: the log line, the partition, the batch
    docs.plant("Summarize review 2 ", rejected(3))
    # review 3 fails the log-line run and the partition run (three attempts each)
    docs.plant("Summarize review 3 ", overloaded(6))
    docs.plant("Summarize the annual report.", rate_limited(2))
    page = yield {
        # ...and the batch (after "retry only the failures" got it through)
        "batch = client.submit_batch(": lambda: docs.plant("Summarize review 3 ", overloaded(3))}
    out = docs.out()
    assert page["greeting"] == echo("Say hello")
    assert page["label"] == "example"
    assert page["french"] == echo("Translate to French: " + echo(
        "Write a one-line slogan for a bakery."))
    # structured outputs: the truncated answer was asked again, the others handled
    verdicts = page["verdicts"]
    assert [verdict is None for verdict in verdicts] == [False, True, False, True]
    assert verdicts[2].sentiment == "example"
    assert "refused: I can't help with that." in out
    assert "does not fit the schema at $.confidence" in out
    logged = [record.getMessage() for record in docs.caplog.records if record.name == "reviews"]
    assert len(logged) == 2
    assert logged[0].startswith("HTTPStatusError for 'Summarize review 2")
    assert "'status': 503" in logged[1] and "'attempts': 3" in logged[1]
    assert sorted(page["answers"]) == [0, 3] and sorted(page["failures"]) == [1, 2]
    # only the retryable failure (the 503s) was sent again, and it got through
    assert page["again"] == [2]
    assert page["still_failed"] == [1]
    assert page["results"][2].unwrap().text == echo(page["prompts"][2])
    # our own schedule: two 429s, two waits of 5 and 15 s, then the answer
    assert [nap for nap in naps if nap >= 1] == [5, 15]
    assert page["patient"].unwrap().text == echo("Summarize the annual report.")
    # the batch: BatchItemsError, outcomes(), and the retryable failure resubmitted
    assert "2 succeeded, 2 failed" in out
    summaries = page["summaries"]
    assert summaries[1] is None
    assert [summaries[i] for i in (0, 2, 3)] == [echo(page["prompts"][i]) for i in (0, 2, 3)]


@setup("async.md", blocks=5)
def _async(docs: Docs) -> Hooks:
    docs.openai.batch_plan = BatchPlan(finish_after=0)  # the batch has ended at its first poll
    page = yield {}
    out = docs.out()
    assert "['Echo: One', 'Echo: Two', 'Echo: Three']" in out
    assert len(docs.anthropic.requests) == 3
    assert page["greeting"] == echo("Say hello")
    assert page["labels"] == [echo("Sentiment of 'great food'"), echo("Sentiment of 'cold soup'")]
    assert page["answers"] == [echo("Translate to German: Hello"),
                               echo("Translate to German: Thanks")]
    assert page["batch_id"].startswith("batch_") and page["batch_id"] in out
    assert [outcome.unwrap().text for outcome in page["outcomes"]] == page["answers"]
    assert all(is_successful(outcome) for outcome in page["outcomes"])


def echo_last_user_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """The OpenAI emulators answer a conversation with its last user message ("Echo: <text>"),
    as the Anthropic and Gemini emulators do, rather than with the whole list of input items."""
    emulated = openai_emulator.default_answer

    def last_user_turn(request: Any) -> dict[str, Any]:
        turns = request.get("input")
        if isinstance(turns, list):
            last = next(turn["content"] for turn in reversed(turns) if turn["role"] == "user")
            request = {**request, "input": last}
        return emulated(request)

    monkeypatch.setattr(openai_emulator, "default_answer", last_user_turn)


@setup("messages.md", blocks=10)
def _messages(docs: Docs) -> Hooks:
    batches_end_at_once(docs)
    echo_last_user_turn(docs.monkeypatch)
    page = yield {}
    sent = docs.sent()
    # one user message and a system message: the prompt's own body, the system as instructions
    assert sent[0] == {"model": MODEL, "input": "Good morning",
                       "instructions": page["messages"][0]["content"]}
    assert page["text"] == echo("Good morning")
    # the three spellings build the same request
    assert sent[1:4] == [{"model": MODEL, "input": "Say hello"}] * 3
    assert page["hellos"] == [echo("Say hello")] * 3
    # few-shot: the system prompt lifted, the examples as input items, in order
    few_shot = page["few_shot"]
    assert sent[4] == {"model": MODEL, "input": few_shot[1:], "temperature": 0,
                       "instructions": few_shot[0]["content"]}
    assert page["label"] == echo("It was fine, I guess.")
    # the follow-up turn: the first answer went back as the assistant's turn
    assert sent[5]["input"] == "Suggest a name for a bakery."
    assert page["first"] == echo("Suggest a name for a bakery.")
    assert sent[6]["input"] == [
        {"role": "user", "content": "Suggest a name for a bakery."},
        {"role": "assistant", "content": page["first"]},
        {"role": "user", "content": "Shorter, please."}]
    assert page["second"] == echo("Shorter, please.")
    # mixed inputs: map's results in input order, then the batch's
    expected = [echo("Translate to German: Hello"), echo("Thank you very much"),
                echo("Translate: See you tomorrow")]
    assert docs.printed[:3] == [(answer,) for answer in expected]
    assert page["answers"] == expected
    (uploaded,) = [f for f in docs.openai.files.values() if f.purpose == "batch"]
    lines = uploaded.lines()
    assert [line["custom_id"] for line in lines] == ["hello", "thanks", "later"]
    mapped = [docs.sent(text=text)[-1] for text in
              ("Translate to German: Hello", "Thank you very much", "See you tomorrow")]
    assert [line["body"] for line in lines] == mapped  # each line: the single call's body
    assert mapped[1] == {"model": MODEL, "input": "Thank you very much",
                         "instructions": "Answer in German."}
    assert [turn["role"] for turn in mapped[2]["input"]] == ["user", "assistant", "user"]
    # prefill: sent to Anthropic as the last turn, refused on OpenAI before sending
    (claude,) = [request.json() for request in docs.anthropic.requests
                 if request.path == "/v1/messages"]
    assert claude["messages"][-1] == {"role": "assistant", "content": "["}
    assert isinstance(page["colours"], str)
    assert page["refused"] == "input" and not docs.sent(text="List three colours")
    # the system prompt twice: refused before sending
    assert page["twice"] == "system" and len(docs.sent(text="Good morning")) == 1
    # a bad message among many: named by its place; map, which reads lazily, had sent the one
    # before it (block 2 sent "Say hello" thrice), and never the bad one
    (error,) = docs.printed[3]
    assert isinstance(error, llmbackend.ConfigurationError) and error.key == "inputs"
    assert str(error).startswith("message #0 of input #1 has the role 'tool'")
    assert len(docs.sent(text="Say hello")) == 4 and not docs.sent(text="42")
    # the local model: a list of messages is extra["conversation"], token for token
    assert page["local"].provider == "transformers"
    assert isinstance(page["as_input"], str) and page["as_input"] == page["as_extra"]


@setup("streaming.md", blocks=8)
def _streaming(docs: Docs) -> Hooks:
    page = yield {
        # the lighthouse story breaks after its first delta: no final event
        'client.stream("Tell me a story about a lighthouse.")':
            lambda: docs.anthropic.stream_fault(cut=True),
    }
    out = docs.out()
    haiku = echo("Write a haiku about oceans.")
    assert out.startswith(haiku + "\n")  # printed as it came, the deltas joined
    assert page["generation"].text == haiku and page["generation"].finish_reason == "stop"
    (sent, *_) = docs.sent()
    assert sent["stream"] is True and sent["input"] == "Write a haiku about oceans."
    # the client's stream of a message list: the system prompt lifted, the answer joined
    (claude, *_) = [request.json() for request in docs.anthropic.requests
                    if request.path == "/v1/messages"]
    assert claude["stream"] is True and claude["system"] == "Answer in one sentence."
    assert page["answer"] == "Echo: Why is the sea salty?"
    assert page["river"] == "Echo: Name a river."
    # structured output: raw JSON deltas, a validated City at the end
    assert page["city"] == page["City"].model_validate_json(page["raw"])
    assert any(":streamGenerateContent" in request.path for request in
               docs.gemini.requests)
    # the broken story: the text received, then the note, and StreamError's cause
    assert "[cut off after " in out and "ended without its 'message_stop' event" in out
    assert page["essay"] == "Echo: Write a long essay on tides."
    assert page["stream"].text.startswith("Echo: Count") and page["stream"].finished
    assert page["greeting"] == echo("Say hello")


# The pages below are written by others; their setups only check what their examples computed.


@setup("index.md", blocks=1)
def _index(docs: Docs) -> Hooks:
    page = yield {}
    assert page["resp"] == echo("Write a haiku about oceans.")
    (sent,) = docs.sent()
    assert (sent["temperature"], sent["max_output_tokens"]) == (0.7, 100)


@setup("openai.md", blocks=4)
def _openai(docs: Docs) -> Hooks:
    batches_end_at_once(docs)

    def serve_locally() -> None:  # the page's `export OPENAI_BASE_URL=http://localhost:8000/v1`
        docs.monkeypatch.setenv("OPENAI_BASE_URL", docs.local_server.base_url)
        docs.monkeypatch.delenv("OPENAI_API_KEY")  # the server checks none

    page = yield {"base URL from the environment": serve_locally}
    haiku, summary, batch_id, results, hello = docs.printed
    assert haiku == (echo("Write a haiku about oceans."),)
    assert docs.sent()[0]["instructions"] == "You are a poet."  # extra["system"]
    assert summary == ("example", ["example"])
    assert batch_id == (page["batch"].id,)
    assert results == ([echo("Translate to German: Hello"), echo("Translate to German: Thanks")],)
    # the OpenAI-compatible server: its model, and no key sent when none is set
    assert hello == (echo("Say hello"),)
    (request,) = [request for request in docs.local_server.requests
                  if request.path == "/v1/responses"]
    assert request.json()["model"] == "Qwen/Qwen2.5-7B-Instruct"
    assert "authorization" not in request.headers


@setup("migrating-from-google-generativeai.md", blocks=7)
def _migrating_from_google_generativeai(docs: Docs) -> Hooks:
    batches_end_at_once(docs)
    haiku = "Write a haiku about oceans."

    def block() -> None:  # the error handling example meets a blocked answer
        docs.gemini.overrides[haiku] = gemini_response("gemini-2.5-flash", "",
                                                       finish_reason="SAFETY")

    page = yield {"except llmbackend.BlockedError": block,
                  "async def haiku": lambda: docs.gemini.overrides.pop(haiku)}
    sent = [request.json() for request in docs.gemini.requests
            if request.path.endswith(":generateContent")]
    assert sent[0]["systemInstruction"]["parts"] == [{"text": "You are a poet."}]
    assert sent[0]["generationConfig"] == {"temperature": 0.7, "maxOutputTokens": 100,
                                           "topK": 40}
    assert sent[1]["safetySettings"][0]["threshold"] == "BLOCK_ONLY_HIGH"
    assert page["calm"] == echo("Tell me about volcanoes.")
    assert page["generation"].finish_reason == "stop"
    assert page["recipe"].name == "example" and page["as_json"]["name"] == "example"
    assert ("blocked:", "SAFETY") in docs.printed
    assert docs.printed[-2:] == [(echo(haiku),), (page["batch"].id,)]  # async, then the batch
    assert page["summaries"] == [echo("Summarize: The quick brown fox jumps over the lazy dog."),
                                 echo("Summarize: A tale of two cities is a novel...")]
