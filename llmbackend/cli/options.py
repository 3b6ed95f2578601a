"""Effectful: the options the commands share (click decorators), and what the library is given
from them: the generation config, the provider options, the schema (read from its file).

Strategy: an option is declared once here and used by every command that takes it, so that
``run`` and ``batch submit`` cannot drift apart in names, defaults or help texts.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import click

from llmbackend.cli.debugging import enable_debug
from llmbackend.cli.errors import CommandError

if TYPE_CHECKING:
    from llmbackend.types import StructuredOutput

__all__ = [
    "REFUSED_OPTIONS",
    "connection_options",
    "debug_option",
    "generation_config",
    "generation_options",
    "id_arguments",
    "key_values",
    "model_option",
    "progress_option",
    "provider_option",
    "provider_options",
    "read_schema",
    "show_progress",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Provider options that never come from the command line, and where they come from instead.
REFUSED_OPTIONS = {
    "api_key": "API keys are read from the provider's environment variable (OPENAI_API_KEY, "
    "ANTHROPIC_API_KEY, GOOGLE_API_KEY or GEMINI_API_KEY), never from the command line, where "
    "they would end up in the shell's history and in ps",
    "base_url": "the base URL is read from the provider's environment variable "
    "(OPENAI_BASE_URL, ANTHROPIC_BASE_URL, GOOGLE_GEMINI_BASE_URL or GEMINI_BASE_URL)",
    "timeout": "use --timeout SECONDS (--request-timeout on the batch ID commands)",
    "max_retries": "use --max-retries N",
}


# --- the decorators -------------------------------------------------------------------------------


def debug_option(function: F) -> F:
    """``--debug`` after the command too (``llmbackend run ... --debug``)."""
    def enable(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            enable_debug()

    return click.option("--debug", is_flag=True, expose_value=False, is_eager=True,
                        callback=enable, help="The same as llmbackend --debug.")(function)


def key_values(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
               ) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as a dict; each value is read as JSON when it is JSON, else kept as
    the string it is."""
    parsed: dict[str, Any] = {}
    for item in values:
        key, equals, raw = item.partition("=")
        key = key.strip()
        if not equals or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", ctx=ctx, param=param)
        if key in REFUSED_OPTIONS and param.name == "option":
            # Said without the value: it may be a key.
            raise click.BadParameter(f"{key!r} is not taken here: {REFUSED_OPTIONS[key]}",
                                     ctx=ctx, param=param)
        try:
            parsed[key] = json.loads(raw)
        except RecursionError:
            raise click.BadParameter(f"the value of {key!r} is JSON nested too deeply to read",
                                     ctx=ctx, param=param) from None
        except ValueError:
            parsed[key] = raw
    return parsed


def provider_option(required: bool) -> Callable[[F], F]:
    """``-p/--provider``: required to make a request; optional on the batch ID commands."""
    help_text = ("The provider: openai, anthropic, gemini, or a local runtime (transformers, "
                 "vllm, mlx)." if required else
                 "The provider, to re-attach by id to a batch whose handle is not saved here.")
    return click.option("-p", "--provider", required=required, metavar="PROVIDER",
                        help=help_text)


def model_option(function: F) -> F:
    """``-m/--model``."""
    return click.option("-m", "--model", required=True, metavar="MODEL",
                        help="The model: a name, or a local model's path or Hub id.")(function)


def connection_options(handle_commands: bool) -> Callable[[F], F]:
    """``-O KEY=VALUE``, ``--max-retries`` and the request timeout: ``--timeout``, or
    ``--request-timeout`` on the batch ID commands (where ``wait --timeout`` is the wait's)."""
    def apply(function: F) -> F:
        timeout_name = "--request-timeout" if handle_commands else "--timeout"
        function = click.option(
            "-O", "--option", "option", multiple=True, metavar="KEY=VALUE",
            callback=key_values,
            help="A provider option (repeatable), e.g. -O structured_output=tool (Anthropic), "
            "-O apply_chat_template=true (local models). VALUE is read as JSON when it is JSON, "
            "else as a string.")(function)
        function = click.option(
            "--max-retries", type=int, metavar="N",
            help="Retries after the first attempt, for retryable failures (default 2).")(function)
        return click.option(
            timeout_name, "timeout", type=float, metavar="SECONDS",
            help="Seconds for each whole HTTP request (default 600); when streaming, for "
            "each wait for the next bytes.")(function)

    return apply


def id_arguments(function: F) -> F:
    """The arguments every ``batch <verb> ID`` command takes: the id, ``-p`` (optional) and the
    connection options."""
    function = connection_options(handle_commands=True)(function)
    function = provider_option(required=False)(function)
    return click.argument("batch_id", metavar="ID")(function)


def generation_options(function: F) -> F:
    """The generation config's options, ``-x KEY=VALUE`` and ``--schema FILE``."""
    for decorator in reversed([
        click.option("--system", metavar="TEXT", help="A system prompt (instructions)."),
        click.option("--temperature", type=float, help="Sampling temperature, 0 to 2."),
        click.option("--top-p", type=float, help="Nucleus sampling, 0 to 1."),
        click.option("--max-tokens", type=int, metavar="N", help="Cap on generated tokens."),
        click.option("--seed", type=int, help="Seed, where the provider has one (Gemini, local "
                     "models)."),
        click.option("-x", "--extra", multiple=True, metavar="KEY=VALUE", callback=key_values,
                     help="A provider-specific generation parameter (repeatable), passed as "
                     "config extra, e.g. -x 'reasoning={\"effort\": \"low\"}' or "
                     "-x 'stop=[\"END\"]'. VALUE is read as JSON when it is JSON."),
        click.option("--schema", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
                     help="A JSON Schema file: ask for a JSON answer that matches it (the "
                     "answer printed is the parsed JSON)."),
    ]):
        function = decorator(function)
    return function


def progress_option(function: F) -> F:
    """``--progress/--no-progress``."""
    return click.option(
        "--progress/--no-progress", default=None,
        help="Show a progress bar on stderr (default: when stderr is a terminal).")(function)


# --- what the library is given --------------------------------------------------------------------


def show_progress(progress: bool | None) -> bool:
    """Whether to show a progress bar: as ``--progress/--no-progress`` says, else when stderr
    is a terminal."""
    return sys.stderr.isatty() if progress is None else progress


def generation_config(*, provider: str, temperature: float | None, top_p: float | None,
                      max_tokens: int | None, seed: int | None, system: str | None,
                      extra: Mapping[str, Any], messages_in: str | None = None
                      ) -> dict[str, Any]:
    """The generation config the options give (only what was given). ``messages_in``: where the
    (first) list of messages of the input is, when there is one (``--messages FILE``,
    ``FILE:LINE``)."""
    config: dict[str, Any] = {name: value for name, value in (
        ("temperature", temperature), ("top_p", top_p), ("max_tokens", max_tokens),
        ("seed", seed)) if value is not None}
    extra = dict(extra)
    if system is not None:
        if "system" in extra or "conversation" in extra:
            raise CommandError("give the system prompt once: --system, or -x system=... "
                               "(-x conversation=... on local models), not both")
        from llmbackend.providers import is_local

        if is_local(provider) and messages_in is None:
            # Plain prompts on a local model: a chat of the system message, the prompt
            # following as the user's turn, rendered with the model's chat template whatever
            # apply_chat_template says (extra["system"] would need that option on).
            extra["conversation"] = [{"role": "system", "content": system}]
        else:
            # Every provider takes extra["system"] the same way (docs/messages.md): put first
            # in a conversation, refused beside a system message of its own.
            extra["system"] = system
    if extra:
        config["extra"] = extra
    return config


def provider_options(option: Mapping[str, Any], timeout: float | None,
                     max_retries: int | None) -> dict[str, Any]:
    """The provider options: every ``-O``, and the timeout and retries when given."""
    options = dict(option)
    if timeout is not None:
        options["timeout"] = timeout
    if max_retries is not None:
        options["max_retries"] = max_retries
    return options


def read_schema(path: str | None) -> StructuredOutput[Any] | None:
    """The JSON Schema in the file ``path`` (``--schema``), or ``None`` without one."""
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            schema = json.load(file)
    except OSError as error:
        raise CommandError(f"{path}: cannot read the schema: {error.strerror}") from error
    except RecursionError:
        raise CommandError(f"{path}: the schema is JSON nested too deeply to read") from None
    except ValueError as error:
        raise CommandError(f"{path}: the schema is not JSON: {error}") from error
    if not isinstance(schema, dict):
        raise CommandError(f"{path}: a JSON Schema is a JSON object, got "
                           f"{type(schema).__name__}")
    from llmbackend import StructuredOutput

    return StructuredOutput(schema=schema)
