"""Pure: a remote client's settings, resolved from explicit options first, then the environment.

``resolve_settings(provider, options, environment)`` is the one place provider options become
``ClientSettings``: the environment is an argument (the shell passes ``os.environ``), so this
module reads no variable itself and is tested with plain dicts.

Strategy: every common option has one small check in ``OPTION_CHECKS`` (value in, checked value
out, ``ConfigurationError`` naming the option otherwise); the provider-specific ones are data on
the ``Provider`` record (their allowed values). ``base_url`` and ``api_key`` also read the
environment and depend on each other (the official endpoint needs a key), so they have a function
each. Nothing here opens a connection: ``backends`` turns settings into a transport.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from attrs import field, frozen

from llmbackend.checks import check_max_retries, check_timeout
from llmbackend.errors import ConfigurationError, MissingCredentialsError, did_you_mean
from llmbackend.providers import Provider
from llmbackend.retrying import RetryPolicy
from llmbackend.types import Secret

__all__ = [
    "DEFAULT_TIMEOUT",
    "OPTION_CHECKS",
    "REMOTE_OPTIONS",
    "SECRET_HEADER_WORDS",
    "ClientSettings",
    "header_secrets",
    "resolve_settings",
]

#: Seconds a whole request may take, each attempt, when no ``timeout`` option is given.
DEFAULT_TIMEOUT = 600.0

#: Custom headers whose values are treated as credentials: kept out of errors, logs and reprs.
SECRET_HEADER_WORDS = ("auth", "key", "token", "secret", "password", "cookie", "session")


@frozen(kw_only=True)
class ClientSettings:
    """Where and how a client connects; equal settings share one pooled transport at top level."""

    provider: str
    base_url: str
    api_key: Secret | None
    timeout: float
    max_retries: int
    # Hidden from the repr: gateways often take a credential in a custom header.
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    drop_unsupported: bool = False
    #: Provider-specific options (``Provider.options``), checked.
    options: tuple[tuple[str, object], ...] = ()


def _check_headers(value: object) -> tuple[tuple[str, str], ...]:
    headers = value or {}
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ConfigurationError(message="headers must be a dict of strings", key="headers")
    for name, text in headers.items():
        if not (_header_safe(name) and _header_safe(text.replace(" ", ""))):
            raise ConfigurationError(
                message=f"header {name!r} holds a control or non-ASCII character; HTTP headers "
                "are printable ASCII", key="headers")
    return tuple(sorted(headers.items()))


def _check_drop(value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(message="drop_unsupported_params must be True or False",
                                 key="drop_unsupported_params")
    return value


#: The common options that need neither the environment nor each other: name -> (the
#: ``ClientSettings`` field, the default when the option is absent, the check).
OPTION_CHECKS: Mapping[str, tuple[str, object, Callable[[object], Any]]] = {
    "timeout": ("timeout", DEFAULT_TIMEOUT, check_timeout),
    "max_retries": ("max_retries", RetryPolicy().max_retries, check_max_retries),
    "headers": ("headers", None, _check_headers),
    "drop_unsupported_params": ("drop_unsupported", False, _check_drop),
}

#: Provider options every remote provider accepts.
REMOTE_OPTIONS = ("api_key", "base_url", *OPTION_CHECKS)


def resolve_settings(
    provider: Provider, options: Mapping[str, Any], environment: Mapping[str, str]
) -> ClientSettings:
    """The settings for ``provider`` from explicit options first, then the environment.

    Raises ``ConfigurationError`` for an unknown option or a bad value, and
    ``MissingCredentialsError`` when the provider's official endpoint would get no API key.
    """
    _check_names(provider, options)
    extras = _provider_options(provider, options)
    base_url = _base_url(provider, options, environment)
    api_key = _api_key(provider, options, environment, base_url)
    checked = {field_name: check(options.get(name, default))
               for name, (field_name, default, check) in OPTION_CHECKS.items()}
    return ClientSettings(provider=provider.name, base_url=base_url, api_key=api_key,
                          options=extras, **checked)


def header_secrets(settings: ClientSettings) -> tuple[Secret, ...]:
    """Every credential the settings carry: the API key and the values of custom headers whose
    names say they hold one (gateways), for the transport to keep out of what it shows."""
    key = (settings.api_key,) if settings.api_key is not None else ()
    return key + tuple(Secret(value) for name, value in settings.headers
                       if any(word in name.lower() for word in SECRET_HEADER_WORDS))


def _check_names(provider: Provider, options: Mapping[str, Any]) -> None:
    known = (*REMOTE_OPTIONS, *provider.options)
    for name in options:
        if name not in known:
            hint = did_you_mean(str(name), known)
            raise ConfigurationError(
                message=f"unknown option {name!r} for provider {provider.name!r}.{hint} "
                f"Options: {', '.join(known)}.",
                key=str(name),
            )


def _provider_options(provider: Provider, options: Mapping[str, Any]
                      ) -> tuple[tuple[str, object], ...]:
    extras: list[tuple[str, object]] = []
    for name, allowed in provider.options.items():
        if name not in options:
            continue
        if options[name] not in allowed:
            raise ConfigurationError(
                message=f"option {name!r} for provider {provider.name!r} must be one of "
                f"{', '.join(map(repr, allowed))}, got {options[name]!r}",
                key=name,
            )
        extras.append((name, options[name]))
    return tuple(extras)


def _base_url(provider: Provider, options: Mapping[str, Any], environment: Mapping[str, str]
              ) -> str:
    base_url = options.get("base_url") or _first_env(environment, provider.base_url_env)
    base_url = base_url or provider.default_base_url
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ConfigurationError(
            message=f"base_url must be an http:// or https:// URL, got {base_url!r}",
            key="base_url",
        )
    return base_url.rstrip("/")


def _api_key(provider: Provider, options: Mapping[str, Any], environment: Mapping[str, str],
             base_url: str) -> Secret | None:
    api_key = options.get("api_key") or _first_env(environment, provider.api_key_env)
    if api_key is not None and not isinstance(api_key, str):
        raise ConfigurationError(message="api_key must be a string", key="api_key")
    if api_key and not _header_safe(api_key):
        # Said without the key: it would end up in this message, and from there in logs.
        raise ConfigurationError(
            message="the API key holds whitespace, a control or a non-ASCII character (a "
            "newline from a file, a pasted quote?): strip it", key="api_key")
    if not api_key and base_url == provider.default_base_url.rstrip("/"):
        variable = provider.api_key_env[0]
        raise MissingCredentialsError(
            message=f"{provider.label} needs an API key: set the {variable} environment variable "
            f"or pass api_key=... to llmbackend.client({provider.name!r}, ...)",
            provider=provider.name,
            env_var=variable,
        )
    return Secret(api_key) if api_key else None


def _header_safe(value: str) -> bool:
    """Whether ``value`` can travel in an HTTP header as is: printable ASCII, no spaces."""
    return value.isascii() and value.isprintable() and not any(c.isspace() for c in value)


def _first_env(environment: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = environment.get(name)
        if value:
            return value
    return None
