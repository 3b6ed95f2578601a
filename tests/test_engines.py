"""The local runtimes for real (transformers, MLX; vLLM where installed) on the tiny model built
offline by tests/tiny_model.py. Assertions are about structure, never about the (random) text:
determinism, seeds, finish reasons, token counts, batched equals one by one, chat templates, and
the same greedy tokens from every runtime."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

import llmbackend
from llmbackend import ConfigurationError, Generation, UnsupportedError

pytestmark = pytest.mark.runtime

def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


#: The options each runtime is tested with: chat templates on, and for vLLM the CPU settings
#: that make it start in seconds with a small cache, in float32 like the others.
OPTIONS: dict[str, dict[str, Any]] = {
    "transformers": {"apply_chat_template": True},
    "mlx": {"apply_chat_template": True},
    "vllm": {"apply_chat_template": True, "llm_kwargs": {
        "enforce_eager": True, "distributed_executor_backend": "uni",
        "kv_cache_memory_bytes": 64 << 20, "dtype": "float32", "max_model_len": 256,
        "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True}}},
}
MODULES = {"transformers": "transformers", "mlx": "mlx_lm", "vllm": "vllm"}
INSTALLED = [name for name, module in MODULES.items() if _installed(module)]
RUNTIMES = [pytest.param(name, id=name, marks=pytest.mark.skipif(
    not _installed(MODULES[name]), reason=f"{MODULES[name]} not installed"))
    for name in MODULES]
PROMPTS = ["Hello", "Why is the sky blue?", "Tell me a story about a small red boat"]


def generations(client: llmbackend.Client, prompts: list[str], **config: Any
                ) -> list[Generation[str]]:
    return [outcome.unwrap() for outcome in
            client.submit_batch(prompts, config=config or None).outcomes()]


@pytest.fixture(scope="module")
def chat(tiny_model: Path) -> Iterator[dict[str, llmbackend.Client]]:
    made = {name: llmbackend.client(name, str(tiny_model), **OPTIONS[name])
            for name in INSTALLED}
    yield made
    for client in made.values():
        client.close()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_greedy_is_deterministic_and_batched_equals_one_by_one(
    chat: dict[str, llmbackend.Client], runtime: str
) -> None:
    client = chat[runtime]
    batched = generations(client, PROMPTS, max_tokens=12)
    again = generations(client, PROMPTS, max_tokens=12)
    one_by_one = [generations(client, [prompt], max_tokens=12)[0] for prompt in PROMPTS]
    assert [g.raw["token_ids"] for g in batched] == [g.raw["token_ids"] for g in again]
    assert [g.raw["token_ids"] for g in batched] == [g.raw["token_ids"] for g in one_by_one]
    assert [g.text for g in batched] == [g.text for g in one_by_one]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_finish_reasons_and_token_counts(chat: dict[str, llmbackend.Client], runtime: str,
                                         tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model), local_files_only=True)
    short, long = generations(chat[runtime], ["Hello", PROMPTS[2]], max_tokens=12)
    # The tiny model ends its turn after "." (see tests/tiny_model.py): "Hello" stops early.
    assert short.finish_reason == "stop"
    assert short.usage.output_tokens == len(short.raw["token_ids"]) + 1  # the eos counts
    assert long.finish_reason == "length"
    assert long.usage.output_tokens == 12 == len(long.raw["token_ids"])
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "Hello"}],
                                             add_generation_prompt=True, tokenize=False)
    assert short.raw["prompt"] == rendered == (
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n")
    assert short.usage.input_tokens == len(tokenizer(rendered, add_special_tokens=False)
                                           ["input_ids"])
    assert tokenizer.decode(short.raw["token_ids"]) == short.text


def test_every_runtime_makes_the_same_greedy_tokens(chat: dict[str, llmbackend.Client]) -> None:
    if len(chat) < 2:
        pytest.skip("only one runtime installed")
    answers = {runtime: [g.raw["token_ids"] for g in generations(client, PROMPTS, max_tokens=10)]
               for runtime, client in chat.items()}
    first, *others = answers.values()
    assert all(other == first for other in others), answers


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_seed_makes_sampling_reproducible(chat: dict[str, llmbackend.Client], runtime: str
                                            ) -> None:
    client = chat[runtime]
    config = {"temperature": 1.0, "top_p": 0.95, "seed": 7, "max_tokens": 16}
    first = generations(client, PROMPTS, **config)
    second = generations(client, PROMPTS, **config)
    assert [g.raw["token_ids"] for g in first] == [g.raw["token_ids"] for g in second]
    greedy = generations(client, PROMPTS, max_tokens=16)
    assert [g.raw["token_ids"] for g in first] != [g.raw["token_ids"] for g in greedy]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_stop_strings_cut_the_answer(chat: dict[str, llmbackend.Client], runtime: str) -> None:
    (free,) = generations(chat[runtime], [PROMPTS[2]], max_tokens=12)
    stop = free.text[3:5]
    assert stop and stop in free.text
    (stopped,) = generations(chat[runtime], [PROMPTS[2]], max_tokens=12,
                             extra={"stop": [stop]})
    assert stopped.text == free.text[:free.text.index(stop)]
    assert stopped.finish_reason == "stop"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_conversations_and_raw_prompts(tiny_model: Path, runtime: str) -> None:
    if runtime == "vllm":
        # vLLM keeps process-wide state: a second LLM in this process would break the first
        # (the module's); its chat input is the same code as the others'.
        pytest.skip("one vLLM model per process")
    options = {k: v for k, v in OPTIONS[runtime].items() if k != "apply_chat_template"}
    raw = llmbackend.client(runtime, str(tiny_model), **options)  # the prompt as is
    (plain,) = generations(raw, ["Once upon a time"], max_tokens=4)
    assert plain.raw["prompt"] == "Once upon a time"
    conversations = [[{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": "Hi"}], [{"role": "user", "content": "Yo"}]]
    first, second = generations(raw, ["label a", "label b"], max_tokens=4,
                                extra={"conversations": conversations})
    assert first.raw["prompt"] == ("<|im_start|>system\nBe brief.<|im_end|>\n"
                                   "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert "label" not in second.raw["prompt"]  # a conversation ending with the user's turn
    raw.close()


class Verdict(BaseModel):
    kind: Literal["cat", "dog", "bird"]
    ok: bool
    legs: int = Field(ge=0, le=8)


SCHEMAS = [
    llmbackend.StructuredOutput(pydantic_model=Verdict),
    llmbackend.StructuredOutput(schema={
        "type": "object", "properties": {"tags": {"type": "array", "items": {"enum": ["a", "b"]},
                                                  "maxItems": 3},
                                         "flag": {"type": "boolean"}},
        "required": ["tags", "flag"], "additionalProperties": False}),
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=["pydantic", "dict"])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_structured_outputs_are_constrained_and_validated(
    chat: dict[str, llmbackend.Client], runtime: str, schema: llmbackend.StructuredOutput[Any]
) -> None:
    batch = chat[runtime].submit_batch(PROMPTS, schema=schema, config={"max_tokens": 60})
    for generation in (outcome.unwrap() for outcome in batch.outcomes()):
        assert generation.finish_reason == "stop"
        assert json.loads(generation.text) is not None  # JSON, and valid: parsed is set
        if schema.pydantic_model is not None:
            assert isinstance(generation.parsed, Verdict)
        else:
            assert set(generation.parsed) == {"tags", "flag"}
    seeded = {"temperature": 1.0, "seed": 3, "max_tokens": 60}
    assert chat[runtime].get_response("x", seeded, schema) == chat[runtime].get_response(
        "x", seeded, schema)


def test_structured_answers_agree_across_runtimes(chat: dict[str, llmbackend.Client]) -> None:
    if len(chat) < 2:
        pytest.skip("only one runtime installed")
    answers = {runtime: client.submit_batch(PROMPTS, schema=SCHEMAS[1],
                                            config={"max_tokens": 60}).results()
               for runtime, client in chat.items()}
    first, *others = answers.values()
    assert all(other == first for other in others), answers


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_what_a_runtime_cannot_do_is_an_error(chat: dict[str, llmbackend.Client], runtime: str
                                              ) -> None:
    with pytest.raises(ConfigurationError, match="no provider batch API"):
        chat[runtime].submit_batch(["x"], batch_options={"mode": "native"})
    with pytest.raises(ConfigurationError, match="no batch to re-attach"):
        chat[runtime].get_batch("immediate-1")


def test_mlx_rejects_unknown_sampling_options(chat: dict[str, llmbackend.Client]) -> None:
    if "mlx" not in chat:
        pytest.skip("mlx-lm not installed")
    with pytest.raises(UnsupportedError, match="not an MLX sampling"):
        chat["mlx"].get_response("x", config={"extra": {"beam_width": 3}})
    # ...and passes on the ones it has.
    assert isinstance(chat["mlx"].get_response(
        "x", config={"max_tokens": 3, "extra": {"repetition_penalty": 1.3, "top_k": 5}}), str)


def test_transformers_passes_extra_to_generate(chat: dict[str, llmbackend.Client]) -> None:
    text = chat["transformers"].get_response("x", config={
        "max_tokens": 3, "extra": {"repetition_penalty": 1.3}})
    assert isinstance(text, str)
    with pytest.raises(ValueError, match="not_a_generate_option"):
        chat["transformers"].get_response("x", config={"extra": {"not_a_generate_option": 1}})


def test_a_missing_model_is_a_configuration_error(tmp_path: Path) -> None:
    client = llmbackend.client("transformers", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigurationError, match="could not load the model"):
        client.get_response("x")


def test_top_level_calls_reuse_the_loaded_model(tiny_model: Path) -> None:
    first = llmbackend.generate("transformers", str(tiny_model), "Hello",
                                config={"max_tokens": 4}).unwrap()
    engines = dict(llmbackend.backends._engines)
    second = llmbackend.generate("transformers", str(tiny_model), "Hello",
                                 config={"max_tokens": 4}).unwrap()
    assert llmbackend.backends._engines == engines and len(engines) == 1
    assert first.raw["token_ids"] == second.raw["token_ids"]


def test_vllm_passes_extra_to_sampling_params(chat: dict[str, llmbackend.Client]) -> None:
    if "vllm" not in chat:
        pytest.skip("vllm not installed")
    assert isinstance(chat["vllm"].get_response("x", config={
        "max_tokens": 3, "extra": {"presence_penalty": 0.5, "top_k": 5}}), str)
    with pytest.raises(UnsupportedError, match="SamplingParams"):
        chat["vllm"].get_response("x", config={"extra": {"not_a_sampling_option": 1}})


# --- message-list input (issue 15) ----------------------------------------------------------------


def _engine(client: llmbackend.Client) -> Any:
    """The client's loaded engine: it takes conversation inputs (the faces take them later)."""
    return client._backend.engine  # type: ignore[attr-defined]


def _conversations() -> list[Any]:
    from llmbackend.messages import Message

    return [(Message(role="system", content="Be brief."), Message(role="user", content="Hi"),
             Message(role="assistant", content="Hello!"),
             Message(role="user", content="Tell me a story")),
            (Message(role="user", content="Why is the sky blue?"),)]


def _same_as_extra_conversation(engine: Any) -> None:
    from llmbackend.types import GenerationConfig

    config = GenerationConfig(max_tokens=8)
    conversations = _conversations()
    as_input = engine.generate(conversations, config, None)
    dicts = [[m.to_dict() for m in conversation] for conversation in conversations]
    through_extra = engine.generate(["label a", "label b"], GenerationConfig(
        max_tokens=8, extra={"conversations": dicts}), None)
    (alone,) = engine.generate(["label"], GenerationConfig(
        max_tokens=8, extra={"conversation": dicts[0]}), None)
    tokenizer = engine._tokenizer
    for first, second in zip(as_input, [*through_extra, alone], strict=False):
        one, other = first.unwrap(), second.unwrap()
        assert one.raw["prompt"] == other.raw["prompt"]
        assert (tokenizer.encode(one.raw["prompt"], add_special_tokens=False)
                == tokenizer.encode(other.raw["prompt"], add_special_tokens=False))
        assert one.usage.input_tokens == other.usage.input_tokens
        assert one.raw["token_ids"] == other.raw["token_ids"]  # the same greedy answer
        assert one.text == other.text
    assert as_input[0].unwrap().raw["prompt"] == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nTell me a story<|im_end|>\n"
        "<|im_start|>assistant\n")


def test_a_message_list_input_is_the_same_as_extra_conversation(tiny_model: Path) -> None:
    # Default options (no apply_chat_template): a conversation is always rendered with the
    # template, given as the input or through extra.conversation(s).
    client = llmbackend.client("transformers", str(tiny_model))
    try:
        _same_as_extra_conversation(_engine(client))
    finally:
        client.close()


def test_a_trailing_assistant_turn_is_continued(tiny_model: Path) -> None:
    from llmbackend.messages import Message
    from llmbackend.types import GenerationConfig

    client = llmbackend.client("transformers", str(tiny_model))  # plain prompts sent raw
    engine = _engine(client)
    prefill = (Message(role="user", content="Tell me a story"),
               Message(role="assistant", content="Once upon a"))
    (outcome,) = engine.generate([prefill], GenerationConfig(max_tokens=6), None)
    rendered = ("<|im_start|>user\nTell me a story<|im_end|>\n<|im_start|>assistant\n"
                "Once upon a")
    assert outcome.unwrap().raw["prompt"] == rendered  # no end of turn, no new assistant turn
    # The same text, sent raw, makes the same tokens: the model continues the message.
    (raw,) = engine.generate([rendered], GenerationConfig(max_tokens=6), None)
    assert outcome.unwrap().raw["token_ids"] == raw.unwrap().raw["token_ids"]
    client.close()


def test_a_conversation_needs_a_chat_template(tiny_model: Path) -> None:
    from llmbackend.types import GenerationConfig

    client = llmbackend.client("transformers", str(tiny_model))
    try:
        engine = _engine(client)
        assert engine.generate(["x"], GenerationConfig(max_tokens=1), None)[0].unwrap()  # loads
        engine._tokenizer.chat_template = None
        with pytest.raises(ConfigurationError, match="needs the tokenizer's chat template"):
            engine.generate([_conversations()[1]], GenerationConfig(max_tokens=1), None)
    finally:
        client.close()


def test_vllm_takes_a_message_list_input_like_extra_conversation(
    chat: dict[str, llmbackend.Client]
) -> None:
    if "vllm" not in chat:
        pytest.skip("vllm not installed")
    _same_as_extra_conversation(_engine(chat["vllm"]))
