"""Pure: the Provider record (one per provider: its data and its pure functions) and the registry.

Strategy: a provider is data plus pure functions, so the shell (``api``) and the pipeline treat
every provider alike. Provider modules are imported on first use, keeping ``import llmbackend``
light however many providers there are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from attrs import field, frozen
from returns.result import Result

from llmbackend.errors import ConfigurationError, LLMError, UnsupportedError, did_you_mean
from llmbackend.types import Generation, GenerationRequest, WireRequest, WireResponse

BuildGeneration = Callable[[GenerationRequest], Result[WireRequest, LLMError]]
ParseGeneration = Callable[[GenerationRequest, WireResponse], Result[Generation[str], LLMError]]


@frozen(kw_only=True)
class Provider:
    """Everything llmbackend needs to know to talk to one remote provider.

    - ``name``: the provider argument (``"openai"``); ``label``: for messages (``"OpenAI"``).
    - ``default_base_url``; ``api_key_env`` / ``base_url_env``: environment variables the shell
      reads, in order of preference.
    - ``auth_headers``: the headers that carry an API key (used by the transport only).
    - ``build_generation`` / ``parse_generation``: the pure request builder and response parser.
    - ``options``: provider options beyond the common ones, each with the values it accepts;
      they reach the builder and parser as ``GenerationRequest.options``.
    - ``default_batch_mode``: what ``submit_batch`` does without a ``mode`` batch option:
      ``"native"`` (the provider's batch API) or ``"immediate"`` (concurrent calls, now).
    """

    name: str
    label: str
    default_base_url: str
    api_key_env: tuple[str, ...]
    base_url_env: tuple[str, ...]
    auth_headers: Callable[[str], Mapping[str, str]]
    build_generation: BuildGeneration
    parse_generation: ParseGeneration
    options: Mapping[str, tuple[object, ...]] = field(factory=dict)
    default_batch_mode: str = "native"


def _openai() -> Provider:
    from llmbackend.providers.openai import PROVIDER

    return PROVIDER


def _anthropic() -> Provider:
    from llmbackend.providers.anthropic import PROVIDER

    return PROVIDER


def _gemini() -> Provider:
    from llmbackend.providers.gemini import PROVIDER

    return PROVIDER


_REGISTRY: dict[str, Callable[[], Provider]] = {
    "openai": _openai, "anthropic": _anthropic, "gemini": _gemini,
}

#: Providers the seed README names that are not built yet, with the issue that builds them.
PLANNED: dict[str, str] = {}
#: The local providers (``llmbackend.providers.local``): not HTTP, served by ``engines``.
LOCAL = ("transformers", "vllm", "mlx")


def json_object(raw: bytes) -> dict[str, Any] | None:
    """Pure: ``raw`` decoded as a JSON object, or ``None`` (not JSON, or not an object)."""
    import json

    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def read_count(value: object) -> int | None:
    """Pure: a token or request count as providers write it: a JSON integer, or an int64 as a
    string of ASCII digits (Gemini); ``None`` for anything else (``True`` included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdecimal():
        return int(value)
    return None


def path_segment(value: str, safe: str = "") -> str:
    """Pure: ``value`` percent-encoded for a URL path (ids and model names come from callers and
    response bodies); characters in ``safe`` are kept."""
    return "".join(
        char if char.isascii() and (char.isalnum() or char in "-_.~" or char in safe)
        else "".join(f"%{byte:02X}" for byte in char.encode())
        for char in value
    )


def get_provider(name: Any) -> Provider:
    """Pure: the provider called ``name``. Raises ``ConfigurationError`` for an unknown name and
    ``UnsupportedError`` for one that is planned but not built yet."""
    if not isinstance(name, str):
        raise ConfigurationError(
            message=f"provider must be a string such as 'openai', got {type(name).__name__}",
            key="provider",
        )
    load = _REGISTRY.get(name.lower())
    if load is not None:
        return load()
    if name.lower() in PLANNED:
        raise UnsupportedError(
            message=f"provider {name!r} is not available in this version of llmbackend: "
            f"{PLANNED[name.lower()]} is not built yet. Available: {', '.join(_REGISTRY)}.",
            provider=name,
            parameter="provider",
        )
    known = [*_REGISTRY, *LOCAL]
    hint = did_you_mean(name.lower(), known)
    raise ConfigurationError(
        message=f"unknown provider {name!r}.{hint} Available: {', '.join(known)}.",
        key="provider",
    )
