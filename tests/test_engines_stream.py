"""``Engine.stream`` on the local runtimes for real (transformers, MLX; vLLM where installed), on
the tiny model of tests/tiny_model.py: the deltas joined are the final text, the final result is
the whole call's, stop strings never show, closing early stops the runtime and frees the engine,
and the whole call's errors come from the first ``next()``."""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field
from returns.result import Result

import llmbackend
from llmbackend import ConfigurationError, Generation, UnsupportedError
from llmbackend.engines import Engine, _settled, open_engine
from llmbackend.errors import LLMError
from llmbackend.messages import check_input
from llmbackend.providers.local import LOCAL_PROVIDERS
from llmbackend.types import GenerationConfig
from tests.test_engines import INSTALLED, OPTIONS, RUNTIMES

pytestmark = pytest.mark.runtime


STREAMING = [runtime for runtime in RUNTIMES if runtime.values[0] != "vllm"]

Outcome = Result[Generation[str], LLMError]


class Verdict(BaseModel):
    kind: Literal["cat", "dog", "bird"]
    ok: bool
    legs: int = Field(ge=0, le=8)


VERDICT = llmbackend.StructuredOutput(pydantic_model=Verdict)
STORY = "Tell me a story about a small red boat"  # greedy: a loop that never ends
ONCE = "Once upon a time"  # greedy: varied text for a while
CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "Tell me a story"}]


@pytest.fixture(scope="module")
def engines(tiny_model: Path) -> Iterator[dict[str, Engine]]:
    # One per runtime for the module: vLLM starts slowly and keeps process-wide state.
    made = {name: open_engine(LOCAL_PROVIDERS[name], str(tiny_model), OPTIONS[name])
            for name in INSTALLED}
    yield made
    for engine in made.values():
        engine.close()


def _drain(stream: Generator[str | Outcome, None, None]) -> tuple[list[str], Outcome]:
    """The deltas and the final result of ``stream``, checking its shape: non-empty strings,
    then exactly one result, then the end."""
    items = list(stream)
    *deltas, final = items
    assert all(isinstance(delta, str) and delta for delta in deltas), items
    assert isinstance(final, Result), items
    return [delta for delta in deltas if isinstance(delta, str)], final


def _stream_and_call(engine: Engine, prompt: object, config: GenerationConfig,
                     schema: llmbackend.StructuredOutput[Any] | None = None
                     ) -> tuple[list[str], Generation[str]]:
    item = check_input(prompt)
    deltas, final = _drain(engine.stream(item, config, schema))
    (whole,) = engine.generate([item], config, schema)
    assert final == whole  # text, finish reason, usage, raw, parsed: all the same
    generation = final.unwrap()
    assert "".join(deltas) == generation.text
    assert not engine._lock.locked()
    return deltas, generation


CASES = {
    "length": (ONCE, GenerationConfig(max_tokens=12)),
    "eos": ("Hello", GenerationConfig(max_tokens=60)),
    "conversation": (CONVERSATION, GenerationConfig(max_tokens=40)),
    "seeded": (STORY, GenerationConfig(max_tokens=24, temperature=1.0, seed=5)),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_deltas_make_the_whole_calls_answer(engines: dict[str, Engine], runtime: str,
                                                case: str) -> None:
    prompt, config = CASES[case]
    deltas, generation = _stream_and_call(engines[runtime], prompt, config)
    if case == "length":
        assert generation.finish_reason == "length"
        assert generation.usage.output_tokens == 12
    if case == "eos":
        assert generation.finish_reason == "stop"
        assert generation.usage.output_tokens == len(generation.raw["token_ids"]) + 1
    if runtime == "vllm":
        assert deltas == ([generation.text] if generation.text else [])
    elif len(generation.raw["token_ids"]) >= 4:
        assert len(deltas) > 1  # it streams for real: one delta per token or so
    assert generation.text or case == "eos"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_stop_string_is_never_handed_out(engines: dict[str, Engine], runtime: str) -> None:
    engine = engines[runtime]
    (free,) = engine.generate([ONCE], GenerationConfig(max_tokens=16), None)
    text = free.unwrap().text
    for stop in (text[3:5], text[5:6], text[9:12], text[-3:]):  # each is in the free answer
        assert stop and stop in text
        config = GenerationConfig(max_tokens=16, extra={"stop": [stop, "never-written"]})
        deltas, generation = _stream_and_call(engine, ONCE, config)
        assert generation.text == text[:text.index(stop)]
        assert generation.finish_reason == "stop"
        assert not any(stop in delta for delta in deltas)
        if runtime != "vllm" and len(generation.text) > 4:
            assert len(deltas) > 1


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_schema_streams_the_constrained_answer(engines: dict[str, Engine], runtime: str
                                                 ) -> None:
    for prompt in ("Hello", STORY):
        deltas, generation = _stream_and_call(engines[runtime], prompt,
                                              GenerationConfig(max_tokens=60), VERDICT)
        assert generation.finish_reason == "stop"
        Verdict.model_validate_json(generation.text)  # constrained: valid JSON for the model
        assert (len(deltas) > 1) if runtime != "vllm" else len(deltas) == 1


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_lock_is_held_while_streaming(engines: dict[str, Engine], runtime: str) -> None:
    engine = engines[runtime]
    stream = engine.stream(STORY, GenerationConfig(max_tokens=12), None)
    assert not engine._lock.locked()  # nothing runs before the first next()
    first = next(stream)
    assert isinstance(first, str) and first
    assert engine._lock.locked()
    rest = list(stream)
    assert isinstance(rest[-1], Result)
    assert not engine._lock.locked()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_call_from_the_thread_reading_an_open_stream_is_an_error_not_a_deadlock(
        engines: dict[str, Engine], runtime: str) -> None:
    engine = engines[runtime]
    config = GenerationConfig(max_tokens=12)
    stream = engine.stream(STORY, config, None)
    assert isinstance(next(stream), str)
    with pytest.raises(ConfigurationError, match="still open in this thread"):
        engine.generate([STORY], config, None)
    with pytest.raises(ConfigurationError, match="still open in this thread"):
        next(engine.stream(STORY, config, None))
    # another thread waits for the stream instead, and gets its answer once it is closed
    answers: list[Any] = []
    other = threading.Thread(target=lambda: answers.append(engine.generate([STORY], config,
                                                                           None)))
    other.start()
    other.join(0.3)
    assert other.is_alive() and not answers  # waiting for the lock
    stream.close()
    other.join(60)
    assert not other.is_alive() and answers[0][0].unwrap().text
    (again,) = engine.generate([STORY], config, None)
    assert again == answers[0][0]


def _stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "llmbackend-transformers-stream"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_closing_early_stops_the_runtime(engines: dict[str, Engine], runtime: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    engine = engines[runtime]
    config = GenerationConfig(max_tokens=200)
    (before,) = engine.generate([STORY], config, None)
    assert before.unwrap().finish_reason == "length"  # a greedy loop: 200 tokens when left
    made: list[int] = []  # how many tokens the runtime made for the closed stream
    closed: list[bool] = []
    if runtime == "transformers":
        decode = engine._decode  # type: ignore[attr-defined]

        def counting(prompt: str, new_ids: list[int], *args: Any) -> Any:
            made.append(len(new_ids))
            return decode(prompt, new_ids, *args)

        monkeypatch.setattr(engine, "_decode", counting)
    elif runtime == "mlx":
        from mlx_lm.generate import BatchGenerator

        step, close = BatchGenerator.next_generated, BatchGenerator.close

        def stepping(self: Any) -> Any:
            made.append(1)
            return step(self)

        def closing(self: Any) -> None:
            closed.append(True)
            close(self)

        monkeypatch.setattr(BatchGenerator, "next_generated", stepping)
        monkeypatch.setattr(BatchGenerator, "close", closing)
    stream = engine.stream(STORY, config, None)
    first = next(stream)
    assert isinstance(first, str) and first
    stream.close()
    monkeypatch.undo()
    assert not engine._lock.locked()
    assert not _stream_threads()  # the worker ended before close() returned
    if runtime == "transformers":
        assert len(made) == 1 and made[0] < 10, made  # stopped a token or so after the close
    elif runtime == "mlx":
        # closed with the stream (and again by its __del__, when collected)
        assert 0 < sum(made) < 10 and closed, (made, closed)
    (after,) = engine.generate([STORY], config, None)
    assert after == before  # the engine is as good as before
    deltas, final = _drain(engine.stream(STORY, GenerationConfig(max_tokens=12), None))
    assert "".join(deltas) == final.unwrap().text


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_errors_come_from_the_first_next(engines: dict[str, Engine], runtime: str) -> None:
    engine = engines[runtime]
    bad = {"transformers": (ValueError, "not_a_generate_option"),
           "mlx": (UnsupportedError, "not an MLX sampling"),
           "vllm": (UnsupportedError, "SamplingParams")}[runtime]
    config = GenerationConfig(max_tokens=4, extra={"not_a_generate_option": 1})
    with pytest.raises(bad[0], match=bad[1]):
        engine.generate(["x"], config, None)
    stream = engine.stream("x", config, None)
    with pytest.raises(bad[0], match=bad[1]):  # raised in transformers' worker, re-raised here
        next(stream)
    with pytest.raises(StopIteration):
        next(stream)
    assert not engine._lock.locked() and not _stream_threads()
    with pytest.raises(ConfigurationError, match="must be a string"):
        check_input(42)
    with pytest.raises(UnsupportedError, match="stop"):
        next(engine.stream("x", GenerationConfig(extra={"stop": [""]}), None))
    deltas, final = _drain(engine.stream("Hello", GenerationConfig(max_tokens=12), None))
    assert "".join(deltas) == final.unwrap().text  # still usable


@pytest.mark.parametrize("runtime", STREAMING)
def test_a_conversation_without_a_chat_template_fails_at_the_first_next(
    tiny_model: Path, runtime: str
) -> None:
    engine = open_engine(LOCAL_PROVIDERS[runtime], str(tiny_model), {})
    try:
        assert engine.generate(["x"], GenerationConfig(max_tokens=1), None)[0].unwrap()  # loads
        tokenizer: Any = engine._tokenizer  # type: ignore[attr-defined]
        getattr(tokenizer, "_tokenizer", tokenizer).chat_template = None  # MLX wraps HF's
        if runtime == "transformers":
            tokenizer.chat_template = None
        stream = engine.stream(check_input(CONVERSATION), GenerationConfig(max_tokens=4), None)
        with pytest.raises(ConfigurationError, match="needs the tokenizer's chat template"):
            next(stream)
        assert not engine._lock.locked()
    finally:
        engine.close()


def test_what_is_held_back() -> None:
    # Pure: the settled start of a decoded text, what later tokens cannot change.
    assert _settled("Once upon", None) == "Once upon"
    assert _settled("Once upon ", None) == "Once upon"  # a space may go before "."
    assert _settled("caf\ufffd", None) == "caf"  # half a UTF-8 sequence
    assert _settled("I don n", None) == "I don"  # " n't" may become "n't"
    assert _settled("it '", None) == "it"
    assert _settled("it is", None) == "it is"
    assert _settled("one. two", ["."]) == "one"  # cut as the final text is
    assert _settled("one tw", ["two"]) == "one"  # the start of a stop string
    assert _settled("one t", ["two", "ne t!"]) == "o"  # the earliest possible start
    assert _settled("one", ["xyz"]) == "one"
