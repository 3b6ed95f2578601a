"""Pure: the local providers (transformers, vLLM, MLX): their options, the chat input of each
prompt, and the mapping of the portable config to each runtime's generation arguments.

The runtimes themselves live in the effectful ``llmbackend.engines``; everything here is data in,
data out, and is property-tested like the remote providers.

Chat input, per prompt (the seed README's contract):
- ``config.extra["conversation"]`` (one list of messages for every prompt) or
  ``config.extra["conversations"]`` (one list per prompt) is the chat input. When it ends with a
  ``user`` message it fully defines the request and the prompt string is not used; when it does
  not (e.g. only a ``system`` message), the prompt is appended as the ``user`` message;
- otherwise, with the provider option ``apply_chat_template=True`` the prompt is wrapped in one
  ``user`` message; without it the prompt is sent as raw text.
A chat input is rendered with the tokenizer's chat template (``add_generation_prompt``, default
true, appends the assistant turn's opening).

A prompt may also be a conversation itself (a tuple of ``llmbackend.Message``, the message-list
input, checked by ``llmbackend.messages.check_input``): it is the same thing as that conversation
given through ``extra["conversation"]``, the same messages rendered with the same template, so
the same prompt tokens (for a conversation ending with the user's turn, the common case), and it
is always rendered with the chat template, like ``extra["conversation"]``, whatever
``apply_chat_template`` says (that option is about plain prompts). Two differences, as there is no
separate prompt string: a conversation input is sent as it is (nothing appended), and one ending
with an ``assistant`` message is a prefill: rendered with ``continue_final_message`` (no
generation prompt), the model continues that message. A conversation input together with
``extra["conversation"]`` / ``["conversations"]`` is a ``ConfigurationError``: give the
conversation once.

``config.extra["system"]`` is the system prompt, as on the remote providers: a ``system``
message put first in the chat input. A chat input that has system messages of its own with it is
an ``UnsupportedError`` (parameter ``system``: give the system prompt once), the rule every
provider keeps; a plain prompt sent as raw text (``apply_chat_template`` off, no conversation)
has no place for it, and is a ``ConfigurationError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from attrs import field, frozen

from llmbackend.errors import ConfigurationError, UnsupportedError
from llmbackend.messages import Conversation, check_input
from llmbackend.messages import Message as ChatMessage
from llmbackend.types import GenerationConfig

__all__ = [
    "CHAT_KEYS",
    "DEFAULT_MAX_TOKENS",
    "LOCAL_PROVIDERS",
    "MLX_RESERVED",
    "TRANSFORMERS_RESERVED",
    "VLLM_RESERVED",
    "LocalProvider",
    "Message",
    "PromptInput",
    "check_messages",
    "check_options",
    "is_greedy",
    "max_tokens",
    "mlx_sampler_kwargs",
    "passthrough",
    "prompt_inputs",
    "stop_strings",
    "transformers_generate_kwargs",
    "vllm_sampling_kwargs",
]

#: ``max_tokens`` when the config sets none (vLLM's own default would be 16 tokens).
DEFAULT_MAX_TOKENS = 256

Message = Mapping[str, Any]


@frozen(kw_only=True)
class LocalProvider:
    """A local provider: its name, the pip extra that installs its runtime, the modules that
    runtime needs, and the provider options it takes with their types."""

    name: str
    label: str
    extra: str
    modules: tuple[str, ...]
    options: Mapping[str, tuple[type, ...]] = field(factory=dict)


_CHAT = {"apply_chat_template": (bool,), "add_generation_prompt": (bool,)}
LOCAL_PROVIDERS: Mapping[str, LocalProvider] = {
    "transformers": LocalProvider(
        name="transformers", label="transformers", extra="transformers",
        modules=("torch", "transformers"),
        options={"pipeline_kwargs": (dict,), "model_kwargs": (dict,), "tokenizer": (object,),
                 **_CHAT}),
    "vllm": LocalProvider(
        name="vllm", label="vLLM", extra="vllm", modules=("vllm",),
        options={"llm_kwargs": (dict,), **_CHAT}),
    "mlx": LocalProvider(
        name="mlx", label="MLX", extra="mlx", modules=("mlx", "mlx_lm"),
        options={"load_kwargs": (dict,), **_CHAT}),
}


def check_options(provider: LocalProvider, options: Mapping[str, Any]) -> dict[str, Any]:
    """Pure: ``options`` checked against what ``provider`` takes; ``ConfigurationError`` naming
    an unknown option or a value of the wrong type."""
    from llmbackend.errors import did_you_mean

    for name, value in options.items():
        kinds = provider.options.get(name)
        if kinds is None:
            known = tuple(provider.options)
            raise ConfigurationError(
                message=f"unknown option {name!r} for provider {provider.name!r}."
                f"{did_you_mean(str(name), known)} Options: {', '.join(known)}.", key=str(name))
        if not isinstance(value, kinds):
            raise ConfigurationError(
                message=f"option {name!r} for provider {provider.name!r} must be "
                f"{' or '.join(k.__name__ for k in kinds)}, got {type(value).__name__}",
                key=name)
    return dict(options)


# --- chat input -----------------------------------------------------------------------------------

#: ``config.extra`` keys llmbackend reads itself for local providers (never passed on).
CHAT_KEYS = ("conversation", "conversations", "system")


@frozen(kw_only=True)
class PromptInput:
    """One request's input: raw ``text``, or ``messages`` to render with the chat template;
    ``prefill``: the last message is the assistant's, for the model to continue (rendered with
    ``continue_final_message`` and no generation prompt)."""

    text: str | None = None
    messages: tuple[Message, ...] | None = None
    prefill: bool = False


def prompt_inputs(prompts: Sequence[str | Conversation], config: GenerationConfig, *,
                  apply_chat_template: bool, provider: str = "transformers"
                  ) -> list[PromptInput]:
    """Pure: the input of each prompt (a string, or a conversation: a tuple of messages), by the
    rules in the module docstring. Raises ``ConfigurationError`` for a malformed conversation,
    ``conversations`` whose length is not the number of prompts, a conversation input
    together with ``extra["conversation"]`` / ``["conversations"]``, or ``extra["system"]``
    with nowhere to go; ``UnsupportedError`` (naming ``provider``) for ``extra["system"]``
    beside a system message."""
    inputs = _chat_inputs(prompts, config, apply_chat_template=apply_chat_template)
    if "system" not in config.extra:
        return inputs
    return [_with_system(item, config.extra["system"], provider,
                         None if len(prompts) == 1 else index)
            for index, item in enumerate(inputs)]


def _with_system(item: PromptInput, system: object, provider: str, index: int | None
                 ) -> PromptInput:
    """``item`` with ``extra["system"]`` as its first message (see the module docstring)."""
    if not isinstance(system, str):
        raise ConfigurationError(
            message="config.extra['system'] must be a string (the system prompt), got "
            f"{type(system).__name__}", key="system")
    name = "the input" if index is None else f"input #{index}"
    if item.messages is None:
        raise ConfigurationError(
            message=f"config.extra['system'] is a system message, and {name} is sent as raw "
            "text (apply_chat_template is off): turn apply_chat_template on, or give the input "
            "as a list of messages", key="system")
    if any(message["role"] == "system" for message in item.messages):
        raise UnsupportedError(
            message="give the system prompt once: as a system message or in "
            "config.extra['system'], not both", provider=provider, parameter="system")
    return PromptInput(messages=({"role": "system", "content": system}, *item.messages),
                       prefill=item.prefill)


def _chat_inputs(prompts: Sequence[str | Conversation], config: GenerationConfig, *,
                 apply_chat_template: bool) -> list[PromptInput]:
    extra = config.extra
    given = next((index for index, prompt in enumerate(prompts)
                  if not isinstance(prompt, str)), None)
    if given is not None and ("conversation" in extra or "conversations" in extra):
        key = "conversation" if "conversation" in extra else "conversations"
        name = "the input" if len(prompts) == 1 else f"input #{given}"
        raise ConfigurationError(
            message=f"{name} is a list of messages and config.extra[{key!r}] gives a "
            "conversation too: give the conversation once, as the input or in config.extra, "
            "not both", key=key)
    if "conversation" in extra and "conversations" in extra:
        raise ConfigurationError(
            message="give config.extra['conversation'] (one for every prompt) or "
            "['conversations'] (one per prompt), not both", key="conversations")
    if "conversations" in extra:
        conversations = extra["conversations"]
        if not isinstance(conversations, list) or len(conversations) != len(prompts):
            count = len(conversations) if isinstance(conversations, list) else "not a list"
            raise ConfigurationError(
                message=f"config.extra['conversations'] must be a list of one conversation per "
                f"prompt: {len(prompts)} prompts, got {count}", key="conversations")
        chats: list[Any] = conversations
    elif "conversation" in extra:
        chats = [extra["conversation"]] * len(prompts)
    else:
        chats = [None] * len(prompts)
    inputs = []
    for index, (prompt, chat) in enumerate(zip(prompts, chats, strict=True)):
        if not isinstance(prompt, str):  # a conversation input: no chat from extra (see above)
            inputs.append(_conversation_input(prompt, None if len(prompts) == 1 else index))
            continue
        if chat is None:
            inputs.append(PromptInput(messages=({"role": "user", "content": prompt},))
                          if apply_chat_template else PromptInput(text=prompt))
            continue
        messages = check_messages(chat, index)
        if messages[-1]["role"] != "user":
            messages = (*messages, {"role": "user", "content": prompt})
        inputs.append(PromptInput(messages=messages))
    return inputs


def _conversation_input(conversation: Conversation, index: int | None) -> PromptInput:
    """A conversation input as it is (already checked upstream; checked again here, cheaply, for
    a caller of the engine), as plain dicts: what ``extra["conversation"]`` gives the template."""
    checked = check_input(conversation, index)
    assert not isinstance(checked, str), "a list of messages is checked into a tuple of them"
    messages = tuple(message.to_dict() for message in checked)
    return PromptInput(messages=messages, prefill=checked[-1].role == "assistant")


def check_messages(chat: object, index: int) -> tuple[Message, ...]:
    """Pure: ``chat`` (dicts or ``llmbackend.Message`` values) as a tuple of ``{"role",
    "content"}`` messages, or ``ConfigurationError`` saying what is wrong with conversation
    number ``index``."""
    if not isinstance(chat, list | tuple) or not chat:
        raise ConfigurationError(
            message=f"conversation #{index} must be a non-empty list of messages "
            "({'role': ..., 'content': ...})", key="conversation")
    chat = [message.to_dict() if isinstance(message, ChatMessage) else message
            for message in chat]
    for number, message in enumerate(chat):
        if not (isinstance(message, Mapping) and isinstance(message.get("role"), str)
                and isinstance(message.get("content"), str)):
            raise ConfigurationError(
                message=f"message #{number} of conversation #{index} must be a dict with a "
                "string 'role' and a string 'content'", key="conversation")
    return tuple(dict(message) for message in chat)


def passthrough(config: GenerationConfig, reserved: Sequence[str] = ()) -> dict[str, Any]:
    """Pure: the ``config.extra`` entries to pass on to the runtime (all but the chat input,
    ``stop`` and ``reserved``)."""
    return {key: value for key, value in config.extra.items()
            if key not in CHAT_KEYS and key != "stop" and key not in reserved}


def stop_strings(config: GenerationConfig, provider: str) -> list[str] | None:
    """Pure: ``config.extra["stop"]`` as a list of strings (``None`` when unset)."""
    stop = config.extra.get("stop")
    if stop is None:
        return None
    sequences = [stop] if isinstance(stop, str) else stop
    if not isinstance(sequences, list) or not all(isinstance(s, str) and s for s in sequences):
        raise UnsupportedError(message="config.extra['stop'] must be a non-empty string or a "
                               "list of them", provider=provider, parameter="stop")
    return list(sequences)


def is_greedy(config: GenerationConfig) -> bool:
    """Pure: temperature unset or 0 means greedy decoding."""
    return not config.temperature


def max_tokens(config: GenerationConfig) -> int:
    """Pure: the token budget: ``config.max_tokens`` or ``DEFAULT_MAX_TOKENS``."""
    return config.max_tokens if config.max_tokens is not None else DEFAULT_MAX_TOKENS


# --- per runtime ----------------------------------------------------------------------------------

#: ``generate`` arguments llmbackend sets itself for transformers (not to be given in ``extra``).
TRANSFORMERS_RESERVED = ("max_new_tokens", "do_sample", "temperature", "top_p",
                         "stop_strings", "input_ids", "attention_mask", "generation_config",
                         "tokenizer", "logits_processor")


def transformers_generate_kwargs(config: GenerationConfig) -> dict[str, Any]:
    """Pure: the keyword arguments of ``model.generate`` for ``config`` (the seed is applied by
    the engine, which owns the random state): ``max_new_tokens``, ``do_sample`` (false when
    greedy), ``temperature`` / ``top_p`` when sampling, ``stop_strings``, and every other
    ``extra`` entry as is."""
    _refuse_reserved(config, TRANSFORMERS_RESERVED, "transformers")
    kwargs: dict[str, Any] = {"max_new_tokens": max_tokens(config)}
    if is_greedy(config):
        kwargs["do_sample"] = False
        if config.top_p is not None:
            raise UnsupportedError(
                message="top_p needs sampling: set a temperature above 0 with it (greedy "
                "decoding, temperature 0 or unset, has no top_p)", provider="transformers",
                parameter="top_p")
    else:
        kwargs["do_sample"] = True
        kwargs["temperature"] = config.temperature
        if config.top_p is not None:
            kwargs["top_p"] = config.top_p
    stops = stop_strings(config, "transformers")
    if stops:
        kwargs["stop_strings"] = stops
    kwargs.update(passthrough(config))
    return kwargs


VLLM_RESERVED = ("max_tokens", "temperature", "top_p", "seed", "n", "structured_outputs",
                 "guided_decoding")


def vllm_sampling_kwargs(config: GenerationConfig) -> dict[str, Any]:
    """Pure: the keyword arguments of vLLM's ``SamplingParams`` for ``config``: ``temperature``
    (0 when unset: greedy), ``top_p``, ``max_tokens``, ``seed``, ``stop``, and every other
    ``extra`` entry as is (penalties, ``top_k``, ``min_p``...)."""
    _refuse_reserved(config, VLLM_RESERVED, "vllm")
    kwargs: dict[str, Any] = {"temperature": config.temperature or 0.0,
                              "max_tokens": max_tokens(config)}
    if config.top_p is not None:
        kwargs["top_p"] = config.top_p
    if config.seed is not None:
        kwargs["seed"] = config.seed
    stops = stop_strings(config, "vllm")
    if stops:
        kwargs["stop"] = stops
    kwargs.update(passthrough(config))
    return kwargs


MLX_RESERVED = ("max_tokens", "sampler", "temp", "top_p", "prompt", "logits_processors")


def mlx_sampler_kwargs(config: GenerationConfig) -> dict[str, Any]:
    """Pure: the keyword arguments of ``mlx_lm.sample_utils.make_sampler`` for ``config``:
    ``temp`` (0 when unset: greedy) and ``top_p``; other ``extra`` entries that
    ``make_sampler`` takes (``min_p``, ``top_k``...) are added by the engine."""
    _refuse_reserved(config, MLX_RESERVED, "mlx")
    kwargs: dict[str, Any] = {"temp": config.temperature or 0.0}
    if config.top_p is not None:
        kwargs["top_p"] = config.top_p
    return kwargs


def _refuse_reserved(config: GenerationConfig, reserved: Sequence[str], provider: str) -> None:
    for key in reserved:
        if key in config.extra:
            raise UnsupportedError(
                message=f"config.extra[{key!r}] collides with what llmbackend sets from the "
                "config for the runtime; use the config field (temperature, top_p, max_tokens, "
                "seed, extra['stop']) instead", provider=provider, parameter=key)
