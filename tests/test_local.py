"""The pure side of the local providers: options, chat input, and the config mapping of each
runtime (no runtime needed)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmbackend.errors import ConfigurationError, UnsupportedError
from llmbackend.messages import ROLES, Message
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


@given(prompts, st.booleans(), st.text(max_size=10))
def test_extra_system_is_the_first_message_of_every_chat_input(
    texts: list[str], as_messages: bool, system: str
) -> None:
    """``extra["system"]`` on a local provider: the system prompt, as on the remote ones."""
    given_inputs: list[str | tuple[Message, ...]] = [
        (Message("user", text),) if as_messages else text for text in texts]
    inputs = local.prompt_inputs(given_inputs, GenerationConfig(extra={"system": system}),
                                 apply_chat_template=True)
    assert [list(item.messages or ()) for item in inputs] == [
        [{"role": "system", "content": system}, {"role": "user", "content": text}]
        for text in texts]
    # It is read here, never passed on to the runtime's generate call.
    assert local.passthrough(GenerationConfig(extra={"system": system, "top_k": 3})) == {
        "top_k": 3}


def test_extra_system_beside_a_system_message_or_raw_text_is_refused() -> None:
    config = GenerationConfig(extra={"system": "Be brief."})
    conversation = (Message("system", "Be long."), Message("user", "Hi"))
    with pytest.raises(UnsupportedError, match="give the system prompt once") as raised:
        local.prompt_inputs(["a", conversation], config, apply_chat_template=True,
                            provider="vllm")
    assert raised.value.parameter == "system" and raised.value.provider == "vllm"
    with pytest.raises(UnsupportedError, match="give the system prompt once"):
        local.prompt_inputs(["a"], GenerationConfig(extra={
            "system": "S", "conversation": [{"role": "system", "content": "T"}]}),
            apply_chat_template=True)
    with pytest.raises(ConfigurationError, match="input #1 is sent as raw text") as refused:
        local.prompt_inputs([conversation[1:], "raw"], config, apply_chat_template=False)
    assert refused.value.key == "system"
    with pytest.raises(ConfigurationError, match=r"must be a string \(the system prompt\)"):
        local.prompt_inputs(["a"], GenerationConfig(extra={"system": 3}),
                            apply_chat_template=True)


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


# --- conversation inputs (issue 15: messages in) --------------------------------------------------

_texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=10)
#: Any valid conversation input: roles from ROLES, at least one message that is not a system one.
conversation_inputs = st.lists(
    st.builds(Message, role=st.sampled_from(ROLES), content=_texts), min_size=1, max_size=5,
).filter(lambda turns: any(turn.role != "system" for turn in turns)).map(tuple)


@given(st.lists(conversation_inputs | _texts, min_size=1, max_size=4), st.booleans())
def test_conversation_inputs_are_rendered_as_they_are(
    inputs: list[str | tuple[Message, ...]], template: bool
) -> None:
    made = local.prompt_inputs(inputs, GenerationConfig(), apply_chat_template=template)
    for given_input, item in zip(inputs, made, strict=True):
        if isinstance(given_input, str):  # a plain prompt: as before, whatever its neighbours
            assert item == local.prompt_inputs([given_input], GenerationConfig(),
                                               apply_chat_template=template)[0]
            continue
        # Role order and contents survive; always the chat template (apply_chat_template is
        # about plain prompts); nothing appended; a trailing assistant turn is a prefill.
        assert item.text is None
        assert item.messages == tuple(m.to_dict() for m in given_input)
        assert item.prefill is (given_input[-1].role == "assistant")


@given(conversation_inputs.filter(lambda turns: turns[-1].role == "user"), prompts,
       st.booleans())
def test_a_conversation_input_is_the_same_as_extra_conversation(
    conversation: tuple[Message, ...], labels: list[str], template: bool
) -> None:
    as_input = local.prompt_inputs([conversation] * len(labels), GenerationConfig(),
                                   apply_chat_template=template)
    dicts = [m.to_dict() for m in conversation]
    for extra in ({"conversation": dicts}, {"conversations": [dicts] * len(labels)},
                  {"conversation": list(conversation)}):  # Message values work there too
        through_extra = local.prompt_inputs(labels, GenerationConfig(extra=extra),
                                            apply_chat_template=template)
        assert as_input == through_extra


@given(_texts, st.booleans())
def test_one_user_message_is_the_templated_prompt(text: str, template: bool) -> None:
    (item,) = local.prompt_inputs([(Message(role="user", content=text),)], GenerationConfig(),
                                  apply_chat_template=template)
    assert item == local.prompt_inputs([text], GenerationConfig(), apply_chat_template=True)[0]


@pytest.mark.parametrize("extra", [
    {"conversation": [{"role": "user", "content": "a"}]},
    {"conversations": [[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]]},
])
def test_a_conversation_is_given_once(extra: dict[str, Any]) -> None:
    conversation = (Message(role="user", content="hi"),)
    with pytest.raises(ConfigurationError, match=r"input #1 is a list of messages .*give the "
                       "conversation once") as caught:
        local.prompt_inputs(["a", conversation], GenerationConfig(extra=extra),
                            apply_chat_template=True)
    assert caught.value.key in extra
    with pytest.raises(ConfigurationError, match="the input is a list of messages"):
        local.prompt_inputs([conversation], GenerationConfig(extra={"conversation": [
            {"role": "user", "content": "a"}]}), apply_chat_template=False)


def test_a_bad_conversation_input_names_the_input() -> None:
    bad: Any = ({"role": "robot", "content": "x"},)
    with pytest.raises(ConfigurationError, match="message #0 of input #1 has the role 'robot'"):
        local.prompt_inputs(["a", bad], GenerationConfig(), apply_chat_template=True)
    # A conversation given as plain dicts (a caller of the engine) is checked and taken too.
    ok: Any = ({"role": "user", "content": "x"},)
    (item,) = local.prompt_inputs([ok], GenerationConfig(), apply_chat_template=False)
    assert item.messages == ({"role": "user", "content": "x"},)
