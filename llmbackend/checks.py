"""Pure: the argument checks every public face shares, each written once.

A check takes what the caller passed and returns it typed (or normalised), or raises
``ConfigurationError`` naming the argument and saying what it must be: a programmer error is
raised at once, before anything is built, sent or uploaded. The sync and async faces, the
top-level functions, ``Client``, the batch handles and the command line all call these; none
writes its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from llmbackend.errors import ConfigurationError
from llmbackend.types import StructuredOutput

__all__ = [
    "check_batch_options",
    "check_inputs",
    "check_max_retries",
    "check_model",
    "check_poll_interval",
    "check_progress",
    "check_prompt",
    "check_schema",
    "check_timeout",
    "check_wait_timeout",
]


def check_prompt(value: object, index: int | None = None) -> str:
    """``value`` if it is a prompt (a string); ``index`` names its place among many inputs."""
    if isinstance(value, str):
        return value
    if index is None:
        raise ConfigurationError(
            message=f"input must be a string (the prompt), got {type(value).__name__}",
            key="input")
    raise ConfigurationError(
        message=f"input #{index} must be a string (a prompt), got {type(value).__name__}",
        key="inputs")


def check_inputs(inputs: object) -> list[str]:
    """The prompts of a batch as a list, after checking each is a string (the list is read
    whole: a batch's inputs are all checked before the first is sent)."""
    if isinstance(inputs, str | bytes) or not isinstance(inputs, Iterable):
        raise ConfigurationError(
            message="inputs must be a list of prompts (strings), got "
            f"{type(inputs).__name__}", key="inputs")
    prompts = [check_prompt(prompt, index) for index, prompt in enumerate(inputs)]
    if not prompts:
        raise ConfigurationError(message="inputs is empty: a batch needs at least one prompt",
                                 key="inputs")
    return prompts


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
    """``batch_options`` as a new dict (``None`` is ``{}``)."""
    if batch_options is None:
        return {}
    if not isinstance(batch_options, Mapping):
        raise ConfigurationError(message="batch_options must be a dict, got "
                                 f"{type(batch_options).__name__}", key="batch_options")
    return dict(batch_options)
