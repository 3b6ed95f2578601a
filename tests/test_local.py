"""The pure side of the local providers: options, chat input, and the config mapping of each
runtime (no runtime needed)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmbackend.errors import ConfigurationError, UnsupportedError
from llmbackend.providers import local
from llmbackend.types import GenerationConfig

prompts = st.lists(st.text(max_size=20), min_size=1, max_size=5)
roles = st.sampled_from(["system", "user", "assistant"])
messages = st.lists(st.fixed_dictionaries({"role": roles, "content": st.text(max_size=10)}),
                    min_size=1, max_size=4)


# --- chat input -----------------------------------------------------------------------------------


@given(prompts, st.booleans())
def test_without_a_conversation_prompts_are_text_or_one_user_message(
    texts: list[str], template: bool
) -> None:
    inputs = local.prompt_inputs(texts, GenerationConfig(), apply_chat_template=template)
    if template:
        assert [i.messages for i in inputs] == [({"role": "user", "content": t},) for t in texts]
        assert all(i.text is None for i in inputs)
    else:
        assert [i.text for i in inputs] == texts


@given(prompts, messages, st.booleans())
def test_a_conversation_defines_the_input_or_gets_the_prompt_as_user_turn(
    texts: list[str], conversation: list[dict[str, str]], template: bool
) -> None:
    inputs = local.prompt_inputs(texts, GenerationConfig(extra={"conversation": conversation}),
                                 apply_chat_template=template)
    for text, item in zip(texts, inputs, strict=True):
        assert item.messages is not None
        if conversation[-1]["role"] == "user":
            assert list(item.messages) == conversation  # the prompt is not used
        else:
            assert list(item.messages) == [*conversation, {"role": "user", "content": text}]


def test_the_seed_examples_inputs() -> None:
    # transformers: one system message for every prompt, each prompt as the user turn.
    system = [{"role": "system", "content": "You are concise and helpful."}]
    inputs = local.prompt_inputs(["Draft a friendly reminder email.",
                                  "Suggest a project codename."],
                                 GenerationConfig(extra={"conversation": system}),
                                 apply_chat_template=True)
    assert [i.messages[-1]["content"] for i in inputs if i.messages] == [
        "Draft a friendly reminder email.", "Suggest a project codename."]
    # MLX: one conversation per prompt, each ending with the user's turn: the prompts are labels.
    conversations = [[{"role": "user", "content": "Write a story about Einstein."}],
                     [{"role": "user", "content": "Explain why the sky is blue."}]]
    inputs = local.prompt_inputs(["Einstein story", "Why is the sky blue?"],
                                 GenerationConfig(extra={"conversations": conversations}),
                                 apply_chat_template=True)
    assert [list(i.messages or ()) for i in inputs] == conversations


@pytest.mark.parametrize(("extra", "words"), [
    ({"conversations": [[{"role": "user", "content": "a"}]]}, "2 prompts, got 1"),
    ({"conversations": "x"}, "not a list"),
    ({"conversation": []}, "non-empty list"),
    ({"conversation": [{"role": "user"}]}, "string 'content'"),
    ({"conversation": [{"role": "user", "content": "a"}], "conversations": []}, "not both"),
])
def test_malformed_conversations_are_refused(extra: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        local.prompt_inputs(["a", "b"], GenerationConfig(extra=extra), apply_chat_template=True)


# --- config mapping -------------------------------------------------------------------------------


@given(temperature=st.none() | st.floats(0.0, 2.0), top_p=st.none() | st.floats(0.0, 1.0),
       max_tokens=st.none() | st.integers(1, 4096), seed=st.none() | st.integers(0, 2**31),
       stop=st.none() | st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=3))
def test_vllm_sampling_params(*, temperature: float | None, top_p: float | None,
                              max_tokens: int | None, seed: int | None,
                              stop: list[str] | None) -> None:
    extra: dict[str, Any] = {"presence_penalty": 0.5, "conversation": [
        {"role": "user", "content": "x"}]}
    if stop is not None:
        extra["stop"] = stop
    kwargs = local.vllm_sampling_kwargs(GenerationConfig(
        temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed, extra=extra))
    assert kwargs["temperature"] == (temperature or 0.0)
    assert kwargs["max_tokens"] == (max_tokens or local.DEFAULT_MAX_TOKENS)
    assert kwargs.get("top_p") == top_p
    assert kwargs.get("seed") == seed
    assert kwargs.get("stop") == stop
    assert kwargs["presence_penalty"] == 0.5
    assert "conversation" not in kwargs


@given(temperature=st.none() | st.floats(0.0, 2.0), max_tokens=st.none() | st.integers(1, 999))
def test_transformers_generate_kwargs(temperature: float | None, max_tokens: int | None) -> None:
    kwargs = local.transformers_generate_kwargs(GenerationConfig(
        temperature=temperature, max_tokens=max_tokens,
        extra={"repetition_penalty": 1.1, "stop": "\n"}))
    assert kwargs["max_new_tokens"] == (max_tokens or local.DEFAULT_MAX_TOKENS)
    assert kwargs["do_sample"] is bool(temperature)
    assert kwargs.get("temperature") == (temperature or None)
    assert kwargs["stop_strings"] == ["\n"]
    assert kwargs["repetition_penalty"] == 1.1


def test_mlx_sampler_kwargs() -> None:
    assert local.mlx_sampler_kwargs(GenerationConfig()) == {"temp": 0.0}
    assert local.mlx_sampler_kwargs(GenerationConfig(temperature=0.7, top_p=0.9)) == {
        "temp": 0.7, "top_p": 0.9}


@pytest.mark.parametrize(("mapping", "key"), [
    (local.transformers_generate_kwargs, "max_new_tokens"),
    (local.vllm_sampling_kwargs, "max_tokens"),
    (local.mlx_sampler_kwargs, "temp"),
])
def test_extra_may_not_set_what_the_config_sets(mapping: Any, key: str) -> None:
    with pytest.raises(UnsupportedError, match="collides"):
        mapping(GenerationConfig(extra={key: 1}))


def test_greedy_has_no_top_p_on_transformers() -> None:
    with pytest.raises(UnsupportedError, match="top_p needs sampling"):
        local.transformers_generate_kwargs(GenerationConfig(top_p=0.5))
    with pytest.raises(UnsupportedError, match="stop"):
        local.vllm_sampling_kwargs(GenerationConfig(extra={"stop": [""]}))


def test_options_are_checked_per_provider() -> None:
    transformers = local.LOCAL_PROVIDERS["transformers"]
    assert local.check_options(transformers, {"apply_chat_template": True}) == {
        "apply_chat_template": True}
    with pytest.raises(ConfigurationError, match="Did you mean 'llm_kwargs'"):
        local.check_options(local.LOCAL_PROVIDERS["vllm"], {"llm_kwarg": {}})
    with pytest.raises(ConfigurationError, match="must be bool"):
        local.check_options(transformers, {"apply_chat_template": "yes"})
