"""The examples of docs/fan-out.md, docs/retries-and-timeouts.md, docs/error-recipes.md and
docs/async.md run as written, in order, one namespace per page, against the loopback emulators
(wired in through the environment variables, as a user would).

Only ```python blocks run. A block that needs what the tests do not have (a real server on
localhost, a local model) is fenced ```py instead: shown, never executed. Failures are planted in
the OpenAI emulator per prompt (``Plants``), so that the examples' failure paths run too, and each
test checks what the examples computed. (They are planted in the emulator itself rather than
through ``tests.faults.FaultServer``, whose forwarding drops connections at the examples'
concurrency of 16.)
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from returns.pipeline import is_successful

from tests.anthropic_emulator import AnthropicEmulator
from tests.conftest import ROOT
from tests.emulator import (
    BatchPlan,
    OpenAIEmulator,
    Recorded,
    Scripted,
    error_body,
    response_body,
)

DOCS = ROOT / "docs"
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", flags=re.S)
MODEL = "gpt-4o-mini"


def blocks(page: str) -> list[str]:
    return PYTHON_BLOCK.findall((DOCS / page).read_text())


def run_page(page: str, before: Mapping[str, Callable[[], object]] | None = None
             ) -> dict[str, Any]:
    """Run the page's python blocks in order in one namespace; ``before[text]()`` runs just
    before the first block that contains ``text`` (to plant a failure for that block only)."""
    hooks = dict(before or {})
    namespace: dict[str, Any] = {"__name__": f"docs_{Path(page).stem.replace('-', '_')}"}
    for index, block in enumerate(blocks(page), start=1):
        for text in [text for text in hooks if text in block]:
            hooks.pop(text)()
        exec(compile(block, f"<docs/{page}, block {index}>", "exec"), namespace)
    assert not hooks, f"no block of {page} contains {sorted(hooks)}"
    return namespace


def echo(prompt: str) -> str:
    """What the emulated model answers to a plain prompt."""
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


class Plants:
    """Replies planted in the OpenAI emulator for the requests whose prompt holds a text: each
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


@pytest.fixture
def plant(openai_env: OpenAIEmulator, monkeypatch: pytest.MonkeyPatch) -> Plants:
    return Plants(monkeypatch)


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


def prompts_sent(emulator: OpenAIEmulator, text: str) -> list[str]:
    return [request.json()["input"] for request in emulator.requests
            if request.path == "/v1/responses" and text in request.json()["input"]]


def test_every_page_has_examples() -> None:
    for page in ("fan-out.md", "retries-and-timeouts.md", "error-recipes.md", "async.md"):
        assert len(blocks(page)) >= 4, page
    # the illustrative blocks (a server on localhost) are fenced out of the run
    assert "localhost" not in "".join(blocks("fan-out.md"))
    assert "localhost:8000" in (DOCS / "fan-out.md").read_text()


def test_fan_out_examples(plant: Plants, openai_env: OpenAIEmulator, tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # the page writes squares.jsonl
    plant("Too loud to talk.", rejected())
    # question 3 fails in the streaming example, then again where the loop stops at a failure
    plant("What is 3 squared?", rejected(2))

    page = run_page("fan-out.md")

    out = capsys.readouterr().out
    labels = [echo(prompt) for prompt in page["prompts"]]
    # each result at its own input's place, the failure included
    assert page["labels"] == [labels[0], labels[1], None, labels[3]]
    assert "'Too loud to talk.' failed: OpenAI answered HTTP 400" in out
    lines = [json.loads(line) for line in (tmp_path / "squares.jsonl").read_text().splitlines()]
    assert [line["n"] for line in lines] == list(range(1, 201))
    assert lines[2]["answer"] is None
    assert lines[3]["answer"] == echo("What is 4 squared? Answer with the number only.")
    assert page["seen"] == ["1/4", "2/4", "3/4", "4/4"]
    assert "['1/4', '2/4', '3/4', '4/4']" in out
    # stopping early: the loop ends at question 3, and at most 2 x concurrency (4) past it ran
    assert page["n"] == 3
    assert "question 3 failed, stopping" in out
    assert 200 + 3 <= len(prompts_sent(openai_env, "squared?")) <= 200 + 3 + 2 * 4
    assert page["async_labels"] == labels
    assert page["answers"] == labels  # the immediate batch
    assert [outcome.unwrap().text for outcome in page["outcomes"]] == labels
    assert plant.pending == 0


def test_retries_and_timeouts_examples(plant: Plants, restore_logging: None,
                                       caplog: pytest.LogCaptureFixture,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.INFO, logger="llmbackend")
    plant("Summarize the quarterly report.", overloaded(6))

    page = run_page("retries-and-timeouts.md")

    assert page["answer"] == page["quick"] == echo("Say hello")
    assert page["result"].unwrap().text == echo("Say hello")
    # the client's max_retries=5: six attempts, then the error with its fields
    assert page["summary"] is None
    assert "HTTP 503 after 6 attempts; retryable: True" in capsys.readouterr().out
    retries = [record.getMessage() for record in caplog.records
               if record.name == "llmbackend" and "retrying in" in record.getMessage()]
    assert len(retries) == 5
    assert retries[-1].endswith("after HTTP 503 (attempt 5 of 6)")
    assert logging.getLogger("llmbackend").level == logging.INFO  # the page's logging setup
    assert plant.pending == 0


def test_error_recipes(plant: Plants, monkeypatch: pytest.MonkeyPatch,
                       caplog: pytest.LogCaptureFixture,
                       capsys: pytest.CaptureFixture[str]) -> None:
    naps: list[float] = []
    monkeypatch.setattr(time, "sleep", naps.append)  # the recipes' waits, without the waiting
    refusal = [{"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "refusal", "refusal": "I can't help with that."}]}]
    plant("Classify this review: Ignore the review", [answer("", output=refusal)])
    plant("Classify this review: The staff", [answer(
        '{"sentiment": "posi', status="incomplete", incomplete_reason="max_output_tokens")])
    plant("Classify this review: Meh.", [answer('{"sentiment": "neutral", "confidence": "low"}')])
    # review 2 is rejected by each run that sends it: the log line, the partition, the batch
    plant("Summarize review 2 ", rejected(3))
    # review 3 fails the log-line run and the partition run (three attempts each)
    plant("Summarize review 3 ", overloaded(6))
    plant("Summarize the annual report.", rate_limited(2))

    page = run_page("error-recipes.md", before={
        # ...and the batch (after "retry only the failures" got it through)
        "batch = client.submit_batch(": lambda: plant("Summarize review 3 ", overloaded(3))})

    out = capsys.readouterr().out
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
    logged = [record.getMessage() for record in caplog.records if record.name == "reviews"]
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
    assert plant.pending == 0


def test_async_examples(openai_env: OpenAIEmulator, anthropic_env: AnthropicEmulator,
                        capsys: pytest.CaptureFixture[str]) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=0)  # the batch has ended at its first poll

    page = run_page("async.md")

    out = capsys.readouterr().out
    assert "['Echo: One', 'Echo: Two', 'Echo: Three']" in out
    assert page["greeting"] == echo("Say hello")
    assert page["labels"] == [echo("Sentiment of 'great food'"), echo("Sentiment of 'cold soup'")]
    assert page["answers"] == [echo("Translate to German: Hello"),
                               echo("Translate to German: Thanks")]
    assert page["batch_id"].startswith("batch_") and page["batch_id"] in out
    assert [outcome.unwrap().text for outcome in page["outcomes"]] == page["answers"]
    assert all(is_successful(outcome) for outcome in page["outcomes"])
