"""Pure: the argument checks every public face shares, each written once.

A check takes what the caller passed and returns it typed (or normalised), or raises
``ConfigurationError`` naming the argument and saying what it must be: a programmer error is
raised at once, before anything is built, sent or uploaded. The sync and async faces, the
top-level functions, ``Client``, the batch handles and the command line all call these; none
writes its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Set
from typing import Any

from llmbackend.errors import ConfigurationError
from llmbackend.messages import Conversation, check_input
from llmbackend.schemas import json_problem, short_path, text_problem
from llmbackend.types import GenerationConfig, StructuredOutput

__all__ = [
    "check_batch_options",
    "check_inputs",
    "check_iterable_inputs",
    "check_max_retries",
    "check_model",
    "check_poll_interval",
    "check_progress",
    "check_schema",
    "check_sendable_config",
    "check_timeout",
    "check_wait_timeout",
]


def check_iterable_inputs(inputs: object, what: str = "a list") -> Iterable[object]:
    """``inputs`` if it can be read as a fan-out's or a batch's inputs, one input (a prompt or a
    list of messages) after the other: an iterable, but not a string (one prompt, not many), nor
    a mapping (whose keys would become the prompts), nor a set (which has no order to match
    results by).
    ``what`` says what is wanted, for the message."""
    if isinstance(inputs, str | bytes) or not isinstance(inputs, Iterable):
        raise ConfigurationError(
            message=f"inputs must be {what} of prompts (strings, or lists of messages), got "
            f"{type(inputs).__name__}",
            key="inputs")
    if isinstance(inputs, Mapping):
        why = "a mapping, whose keys would become the prompts; pass list(inputs.values())"
    elif isinstance(inputs, Set):
        why = "a set, which has no order to give results back in; pass sorted(inputs)"
    else:
        return inputs
    raise ConfigurationError(
        message=f"inputs must be {what} of prompts (strings, or lists of messages), got "
        f"{type(inputs).__name__}: {why}", key="inputs")


def check_inputs(inputs: object) -> list[str | Conversation]:
    """The inputs of a batch as a list, each checked by ``messages.check_input`` (a prompt
    string or a conversation; the list is read whole: a batch's inputs are all checked before
    the first is sent)."""
    prompts = [check_input(prompt, index)
               for index, prompt in enumerate(check_iterable_inputs(inputs))]
    if not prompts:
        raise ConfigurationError(message="inputs is empty: a batch needs at least one input",
                                 key="inputs")
    return prompts


def check_sendable_config(config: GenerationConfig) -> GenerationConfig:
    """``config`` if a remote provider can be sent it: its ``extra`` is strict JSON
    (``schemas.json_problem``: no NaN or infinity, no set or other object, no lone surrogate,
    nested at most ``schemas.MAX_DEPTH`` levels). Local runtimes take ``extra`` as Python
    values, so only the remote backends ask this."""
    problem = json_problem(config.extra, "extra")
    if problem is not None:
        where, reason = problem
        raise ConfigurationError(
            message=f"config 'extra' must be JSON data (it is sent as is): {short_path(where)} "
            f"is {reason}", key="extra")
    return config


def check_schema(schema: object) -> StructuredOutput[Any] | None:
    """``schema`` if it is ``None`` or a ``StructuredOutput``."""
    if schema is not None and not isinstance(schema, StructuredOutput):
        raise ConfigurationError(
            message="schema must be llmbackend.StructuredOutput(schema=...) or "
            f"StructuredOutput(pydantic_model=...), got {type(schema).__name__}",
            key="schema",
        )
    return schema


def check_model(model: object) -> str:
    """``model`` if it is a non-empty string."""
    if not isinstance(model, str) or not model:
        raise ConfigurationError(message=f"model must be a non-empty string, got {model!r}",
                                 key="model")
    return model


def check_timeout(value: object, key: str = "timeout") -> float:
    """``value`` as seconds if it is a positive number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(
            message=f"timeout must be a positive number of seconds, got {value!r}", key=key)
    return float(value)


def check_max_retries(value: object) -> int:
    """``value`` if it is a whole number >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(
            message=f"max_retries must be a whole number >= 0, got {value!r}",
            key="max_retries")
    return value


def check_poll_interval(value: object) -> float:
    """``wait``'s ``poll_interval``: a positive number of seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(message="poll_interval must be a positive number of seconds",
                                 key="poll_interval")
    return float(value)


def check_wait_timeout(value: object) -> float | None:
    """``wait``'s ``timeout``: ``None`` (as long as it takes) or seconds >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigurationError(
            message=f"timeout must be None (wait as long as it takes) or a number of "
            f"seconds >= 0, got {value!r}", key="timeout")
    return float(value)


#: What each face's ``progress`` argument is called with, for its error message.
PROGRESS_CALLS = {
    "fan-out": ("progress", "callable(done, total)"),
    "batch option": ("batch option 'progress'", "callable(done, total), e.g. a progress "
                     "bar's update"),
    "wait": ("progress", "callable(BatchState)"),
}


def check_progress(progress: object, face: str = "fan-out"
                   ) -> bool | Callable[..., object] | None:
    """``progress`` if it is ``None``, a bool (``True``: the ready-made bar) or a callable.

    ``face`` says which argument it is (a key of ``PROGRESS_CALLS``), so the message names it
    and what the callable is given.
    """
    if progress is None or isinstance(progress, bool) or callable(progress):
        return progress
    name, call = PROGRESS_CALLS[face]
    bar = " (a progress bar: tqdm if installed, else a line on stderr)" if face == "fan-out" \
        else " (a progress bar)"
    raise ConfigurationError(
        message=f"{name} must be True{bar}, a {call}, or None; got {type(progress).__name__}",
        key="progress")


def check_batch_options(batch_options: object) -> dict[str, Any]:
    """``batch_options`` as a new dict (``None`` is ``{}``), after checking that every string
    in it (``display_name``, ``system``, the ``custom_ids``...) is text UTF-8 can encode: it is
    sent or saved. Each option's own rules are the provider's."""
    if batch_options is None:
        return {}
    if not isinstance(batch_options, Mapping):
        raise ConfigurationError(message="batch_options must be a dict, got "
                                 f"{type(batch_options).__name__}", key="batch_options")
    for name, value in batch_options.items():
        texts = [value] if isinstance(value, str) else [
            item for item in value if isinstance(item, str)
        ] if isinstance(value, list | tuple) else []
        problem = next(filter(None, map(text_problem, texts)), None)
        if problem is not None:
            raise ConfigurationError(message=f"batch option {name!r} {problem}",
                                     key=str(name))
    return dict(batch_options)
