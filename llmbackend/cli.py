"""Effectful: the ``llmbackend`` command line (also ``python -m llmbackend``).

A thin shell over the public API: each command turns its arguments into one call of
``llmbackend.generate``, ``create_batch``, ``get_batch`` or ``restore_batch`` (and the handle's
``state``, ``wait``, ``outcomes``, ``cancel``), and writes what came back. It reads files and
standard input, saves batch handles (``Batch.to_dict()``) in a state directory, and maps errors to
exit codes; it never talks to a provider itself.

Exit codes: 0 ok; 1 unexpected internal error; 2 usage or configuration error; 3 the provider,
the network or the answer failed; 4 a batch ended with some items failed; 5 a batch has not ended
yet; 130 interrupted; 141 standard output closed early. Every error is one line on standard
error, ``llmbackend: error: <message>``; ``--debug`` adds the traceback and the library's DEBUG
log lines.

Strategy: only click is imported at start. The library is imported by the command that needs it
(and ``llmbackend`` itself loads its API on first use), so ``llmbackend --help`` costs about what
importing click costs.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from typing import IO, TYPE_CHECKING, Any, TextIO, TypeVar

import click

if TYPE_CHECKING:
    from llmbackend.batching import BatchCounts, BatchState, BatchStatus
    from llmbackend.errors import LLMError
    from llmbackend.jobs import Batch
    from llmbackend.types import StructuredOutput

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_PROVIDER = 3
EXIT_PARTIAL = 4
EXIT_NOT_READY = 5
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

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
#: The keys a line of a .jsonl prompts file may hold.
JSONL_KEYS = ("prompt", "custom_id")
#: Longest handle file name before it is shortened with a hash (file systems allow 255 bytes).
HANDLE_NAME_LIMIT = 200

EPILOG = """\b
Exit codes:
  0    success
  1    unexpected internal error (rerun with --debug, and report it)
  2    usage or configuration error: a bad option, file or schema, a missing API key
  3    the provider, the network or the answer failed (HTTP error, timeout, refusal...)
  4    a batch ended with some items failed (the results still list every item)
  5    a batch has not ended yet (wait timed out, or results asked for too early)
  130  interrupted (Ctrl-C)
  141  standard output was closed early (e.g. piped into head)

\b
Credentials and base URLs come from the environment only: OPENAI_API_KEY,
OPENAI_BASE_URL, ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, GOOGLE_API_KEY (or
GEMINI_API_KEY), GOOGLE_GEMINI_BASE_URL (or GEMINI_BASE_URL). Batch handles are
saved in $LLMBACKEND_STATE_DIR, else $XDG_STATE_HOME/llmbackend/batches, else
~/.local/state/llmbackend/batches.
"""


class CommandError(Exception):
    """A failure the command line reports itself: one line on stderr and an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class _StdoutClosedError(Exception):
    """Standard output was closed by the reader (``| head``)."""


class _Batches(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order of the workflow, not alphabetical


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError as error:
            raise _StdoutClosedError from error


_debug = False


def _one_line(message: str) -> str:
    """``message`` on one line: line breaks (and the blanks around them) become one space."""
    import re

    return re.sub(r"\s*\n\s*", " ", message.strip())


def _say(message: str) -> None:
    click.echo(f"llmbackend: {_one_line(message)}", err=True)


def _error(message: str) -> None:
    click.echo(f"llmbackend: error: {_one_line(message)}", err=True)


def _warnings_in_one_line() -> None:
    """Show llmbackend's own warnings (a dropped parameter) as ``llmbackend: warning: ...``;
    other libraries' warnings keep Python's format."""
    import warnings

    default = warnings.showwarning

    def show(  # noqa: PLR0917 -- warnings.showwarning's signature
            message: Warning | str, category: type[Warning], filename: str, lineno: int,
            file: TextIO | None = None, line: str | None = None) -> None:
        if category.__module__.startswith("llmbackend"):
            click.echo(f"llmbackend: warning: {_one_line(str(message))}", err=True)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


# --- the top-level group --------------------------------------------------------------------------


@click.group(cls=_Group, epilog=EPILOG,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(None, "--version", package_name="llmbackend", prog_name="llmbackend",
                      message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True,
              help="On errors, show the full traceback; log the library's DEBUG lines (every "
              "HTTP attempt) to stderr.")
def cli(debug: bool) -> None:
    """llmbackend: text LLMs from the command line (OpenAI, Anthropic, Gemini, local models).

    \b
    llmbackend run -p openai -m gpt-4o-mini "Write a haiku about oceans."
    llmbackend batch submit -p openai -m gpt-4o-mini prompts.jsonl
    llmbackend batch results BATCH_ID -o answers.jsonl
    """
    _warnings_in_one_line()
    if debug:
        _enable_debug()


def _enable_debug() -> None:
    """Tracebacks on errors, and the ``llmbackend`` logger's DEBUG lines on stderr."""
    global _debug
    if _debug:
        return
    _debug = True
    import logging

    logger = logging.getLogger("llmbackend")
    logger.setLevel(logging.DEBUG)
    if not any(getattr(handler, "llmbackend_cli", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("llmbackend: debug: %(message)s"))
        handler.llmbackend_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def _debug_option(function: F) -> F:
    """``--debug`` after the command too (``llmbackend run ... --debug``)."""
    def enable(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            _enable_debug()

    return click.option("--debug", is_flag=True, expose_value=False, is_eager=True,
                        callback=enable, help="The same as llmbackend --debug.")(function)


# --- shared options -------------------------------------------------------------------------------


def _key_values(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
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
        except ValueError:
            parsed[key] = raw
    return parsed


def _provider_option(required: bool) -> Callable[[F], F]:
    help_text = ("The provider: openai, anthropic, gemini, or a local runtime (transformers, "
                 "vllm, mlx)." if required else
                 "The provider, to re-attach by id to a batch whose handle is not saved here.")
    return click.option("-p", "--provider", required=required, metavar="PROVIDER",
                        help=help_text)


def _model_option(function: F) -> F:
    return click.option("-m", "--model", required=True, metavar="MODEL",
                        help="The model: a name, or a local model's path or Hub id.")(function)


def _connection_options(handle_commands: bool) -> Callable[[F], F]:
    def apply(function: F) -> F:
        timeout_name = "--request-timeout" if handle_commands else "--timeout"
        function = click.option(
            "-O", "--option", "option", multiple=True, metavar="KEY=VALUE",
            callback=_key_values,
            help="A provider option (repeatable), e.g. -O structured_output=tool (Anthropic), "
            "-O apply_chat_template=true (local models). VALUE is read as JSON when it is JSON, "
            "else as a string.")(function)
        function = click.option(
            "--max-retries", type=int, metavar="N",
            help="Retries after the first attempt, for retryable failures (default 2).")(function)
        return click.option(
            timeout_name, "timeout", type=float, metavar="SECONDS",
            help="Seconds for each whole HTTP request (default 600).")(function)

    return apply


def _generation_options(function: F) -> F:
    for decorator in reversed([
        click.option("--system", metavar="TEXT", help="A system prompt (instructions)."),
        click.option("--temperature", type=float, help="Sampling temperature, 0 to 2."),
        click.option("--top-p", type=float, help="Nucleus sampling, 0 to 1."),
        click.option("--max-tokens", type=int, metavar="N", help="Cap on generated tokens."),
        click.option("--seed", type=int, help="Seed, where the provider has one (Gemini, local "
                     "models)."),
        click.option("-x", "--extra", multiple=True, metavar="KEY=VALUE", callback=_key_values,
                     help="A provider-specific generation parameter (repeatable), passed as "
                     "config extra, e.g. -x 'reasoning={\"effort\": \"low\"}' or "
                     "-x 'stop=[\"END\"]'. VALUE is read as JSON when it is JSON."),
        click.option("--schema", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
                     help="A JSON Schema file: ask for a JSON answer that matches it (the "
                     "answer printed is the parsed JSON)."),
    ]):
        function = decorator(function)
    return function


def _progress_option(function: F) -> F:
    return click.option(
        "--progress/--no-progress", default=None,
        help="Show a progress bar on stderr (default: when stderr is a terminal).")(function)


def _show_progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else progress


def _config(*, provider: str, temperature: float | None, top_p: float | None,
            max_tokens: int | None, seed: int | None, system: str | None,
            extra: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {name: value for name, value in (
        ("temperature", temperature), ("top_p", top_p), ("max_tokens", max_tokens),
        ("seed", seed)) if value is not None}
    extra = dict(extra)
    if system is not None:
        if "system" in extra or "conversation" in extra:
            raise CommandError("give the system prompt once: --system, or -x system=... "
                               "(-x conversation=... on local models), not both")
        from llmbackend.providers import LOCAL

        if provider.lower() in LOCAL:
            # Local models take a system message as the start of the chat (rendered with the
            # model's chat template), the prompt following as the user's turn.
            extra["conversation"] = [{"role": "system", "content": system}]
        else:
            extra["system"] = system
    if extra:
        config["extra"] = extra
    return config


def _provider_options(option: Mapping[str, Any], timeout: float | None,
                      max_retries: int | None) -> dict[str, Any]:
    options = dict(option)
    if timeout is not None:
        options["timeout"] = timeout
    if max_retries is not None:
        options["max_retries"] = max_retries
    return options


def _schema(path: str | None) -> StructuredOutput[Any] | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            schema = json.load(file)
    except OSError as error:
        raise CommandError(f"{path}: cannot read the schema: {error.strerror}") from error
    except ValueError as error:
        raise CommandError(f"{path}: the schema is not JSON: {error}") from error
    if not isinstance(schema, dict):
        raise CommandError(f"{path}: a JSON Schema is a JSON object, got "
                           f"{type(schema).__name__}")
    from llmbackend import StructuredOutput

    return StructuredOutput(schema=schema)


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


# --- run ------------------------------------------------------------------------------------------


@cli.command(epilog="The prompt is read from standard input when PROMPT is omitted or is -.")
@_provider_option(required=True)
@_model_option
@click.argument("prompt", required=False)
@_generation_options
@click.option("--json", "as_json", is_flag=True,
              help="Print the whole result as JSON: text, parsed answer, finish reason, usage, "
              "provider, model, response id.")
@_connection_options(handle_commands=False)
@_debug_option
def run(*, provider: str, model: str, prompt: str | None, system: str | None,
        temperature: float | None, top_p: float | None, max_tokens: int | None,
        seed: int | None, extra: dict[str, Any], schema: str | None, as_json: bool,
        option: dict[str, Any], timeout: float | None, max_retries: int | None) -> int:
    """Send one prompt and print the answer."""
    text = _read_prompt(prompt)
    config = _config(provider=provider, temperature=temperature, top_p=top_p,
                     max_tokens=max_tokens, seed=seed, system=system, extra=extra)
    structured = _schema(schema)
    import llmbackend

    result = llmbackend.generate(provider, model, text, config, structured,
                                 **_provider_options(option, timeout, max_retries))
    generation = _unwrap(result)
    if as_json:
        usage = generation.usage
        click.echo(_dumps({
            "text": generation.text, "parsed": generation.parsed,
            "finish_reason": generation.finish_reason,
            "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                      "reasoning_tokens": usage.reasoning_tokens,
                      "cached_input_tokens": usage.cached_input_tokens,
                      "total_tokens": usage.total_tokens},
            "provider": generation.provider, "model": generation.model,
            "response_id": generation.response_id}))
    elif structured is not None:
        click.echo(_dumps(generation.parsed))
    else:
        click.echo(generation.text)
    return EXIT_OK


def _read_prompt(prompt: str | None) -> str:
    if prompt is None and sys.stdin.isatty():
        raise CommandError("no prompt: give it as an argument, or pipe it in (PROMPT "
                           "omitted or -)")
    if prompt is not None and prompt != "-":
        text = prompt
    else:
        try:
            text = sys.stdin.buffer.read().decode("utf-8")
        except UnicodeDecodeError as error:
            raise CommandError(f"the prompt on standard input is not UTF-8 text: "
                               f"{error.reason} at byte {error.start}") from error
        text = text.removeprefix("\ufeff").rstrip("\r\n")
    if not text.strip():
        raise CommandError("the prompt is empty")
    return text


def _unwrap(result: Any) -> Any:
    from returns.result import Failure

    if isinstance(result, Failure):
        raise result.failure()
    return result.unwrap()


# --- batch ----------------------------------------------------------------------------------------


@cli.group(cls=_Batches, epilog="A native batch's handle is saved at submit; the ID commands "
           "find it there, or re-attach by id with -p PROVIDER.")
def batch() -> None:
    """Batch jobs: submit many prompts, check on them, collect the answers."""


@batch.command("submit", epilog="""\b
PROMPTS is a file, or - for standard input (with --input-format):
  .txt    one prompt per line
  .jsonl  one JSON object per line, {"prompt": "...", "custom_id": "..."}
          (custom_id optional: all lines or none), or a JSON string per line

A native batch (OpenAI and Gemini by default; Anthropic with --mode native)
prints its id on stdout and saves its handle. An immediate or local batch has
run when submit returns: its results are written at once, to -o FILE or to
stdout, and its id goes to stderr.""")
@_provider_option(required=True)
@_model_option
@click.argument("prompts", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@_generation_options
@click.option("--display-name", metavar="TEXT", help="A name for the batch.")
@click.option("--mode", type=click.Choice(["native", "immediate"]),
              help="native: the provider's batch API (half price, within 24 h); immediate: "
              "concurrent calls, now. Default: the provider's (native on OpenAI and Gemini, "
              "immediate on Anthropic; local models always run at once).")
@click.option("--concurrency", type=int, metavar="N",
              help="Immediate and local batches: prompts at a time (default 8; local: all).")
@click.option("--input-format", type=click.Choice(["txt", "jsonl"]),
              help="How PROMPTS is written (default: from its extension).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), metavar="FILE",
              help="Immediate and local batches: write the results here (default: stdout).")
@_progress_option
@_connection_options(handle_commands=False)
@_debug_option
def submit(*, provider: str, model: str, prompts: str, system: str | None,
           temperature: float | None, top_p: float | None, max_tokens: int | None,
           seed: int | None, extra: dict[str, Any], schema: str | None,
           display_name: str | None, mode: str | None, concurrency: int | None,
           input_format: str | None, output: str | None, progress: bool | None,
           option: dict[str, Any], timeout: float | None, max_retries: int | None) -> int:
    """Submit a file of prompts as one batch.

    A native batch prints its id; a batch that runs at once writes its results.
    """
    inputs, custom_ids = read_prompts(prompts, input_format)
    config = _config(provider=provider, temperature=temperature, top_p=top_p,
                     max_tokens=max_tokens, seed=seed, system=system, extra=extra)
    structured = _schema(schema)
    immediate = (mode or _default_mode(provider)) == "immediate"
    if output is not None and not immediate:
        raise CommandError("-o/--output is for batches that run at once (--mode immediate, "
                           "local models); a native batch's results come later: llmbackend "
                           "batch results ID -o FILE")
    batch_options: dict[str, Any] = {}
    for name, value in (("mode", mode), ("display_name", display_name),
                        ("concurrency", concurrency), ("custom_ids", custom_ids)):
        if value is not None:
            batch_options[name] = value
    if immediate and _show_progress(progress):
        batch_options["progress"] = True
    # Checked before anything is sent: a batch that ran must not be lost for want of a place to
    # write its results (or its handle).
    if immediate:
        _check_output(output)
    else:
        _make_state_dir()
    import llmbackend

    try:
        handle = llmbackend.create_batch(inputs, provider, model, config, structured,
                                         batch_options,
                                         **_provider_options(option, timeout, max_retries))
    except llmbackend.ConfigurationError as error:
        if error.key == "custom_ids":
            raise CommandError(f"{error.message} (input #i is line i+1 of "
                               f"{_display_name(prompts)})") from error
        raise
    if isinstance(handle, llmbackend.CompletedBatch):
        counts = handle.counts
        where = "stdout" if output in (None, "-") else output
        _say(f"batch {handle.id} ran at once: {counts.total} prompts, {counts.completed} "
             f"succeeded, {counts.failed} failed; results on {where}")
        return _write_results(handle, output)
    path = _save_handle(handle)
    click.echo(handle.id)
    _say(f"submitted {handle.provider} batch {handle.id} ({len(inputs)} prompts); handle "
         f"saved in {path}")
    return EXIT_OK


def _default_mode(provider: str) -> str:
    from llmbackend.providers import LOCAL, get_provider

    if provider.lower() in LOCAL:
        return "immediate"
    return get_provider(provider).default_batch_mode


def _display_name(path: str) -> str:
    return "<stdin>" if path == "-" else path


def read_prompts(path: str, input_format: str | None) -> tuple[list[str], list[str] | None]:
    """The prompts of a ``.txt`` or ``.jsonl`` file (``-``: standard input), and their custom
    ids when the file gives them; ``CommandError`` naming the file and line of any problem.

    ``.txt``: every line is one prompt (the line break at the end of the file ends the last
    line; it does not start an empty one). ``.jsonl``: every line is a JSON object with a string
    ``"prompt"`` and, on every line or on none, a string ``"custom_id"``; or a JSON string, the
    prompt. An empty line, an empty prompt or a repeated custom id is an error.
    """
    name = _display_name(path)
    if input_format is None:
        if path == "-":
            raise CommandError("reading prompts from standard input: say how they are written, "
                               "with --input-format txt (one prompt per line) or --input-format "
                               "jsonl (one JSON object per line)")
        input_format = {".txt": "txt", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(
            os.path.splitext(path)[1].lower())
        if input_format is None:
            raise CommandError(f"{path}: cannot tell how the prompts are written from the file "
                               "name: name it .txt (one prompt per line) or .jsonl (one JSON "
                               "object per line), or give --input-format")
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as file:
                data = file.read()
    except OSError as error:
        raise CommandError(f"{name}: cannot read it: {error.strerror}") from error
    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the line break that ends the last line
    prompts: list[str] = []
    ids: list[str | None] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        where = f"{name}:{number}"
        try:
            line = raw.removesuffix(b"\r").decode("utf-8")
        except UnicodeDecodeError as error:
            raise CommandError(f"{where}: not UTF-8 text ({error.reason} at byte "
                               f"{error.start} of the line)") from error
        if not line.strip():
            raise CommandError(f"{where}: empty line: every line is one prompt (remove it)")
        if input_format == "txt":
            prompt, custom_id = line, None
        else:
            prompt, custom_id = _jsonl_line(line, where)
        if not prompt.strip():
            raise CommandError(f"{where}: the prompt is empty")
        if custom_id is not None:
            first = seen.setdefault(custom_id, number)
            if first != number:
                raise CommandError(f"{where}: custom_id {custom_id!r} is already used on line "
                                   f"{first}; custom ids must be unique")
        if ids and (ids[0] is None) != (custom_id is None):
            have, lack = (1, number) if ids[0] is not None else (number, 1)
            raise CommandError(f"{where}: line {have} has a custom_id and line {lack} has none: "
                               "give every line a custom_id, or none")
        prompts.append(prompt)
        ids.append(custom_id)
    if not prompts:
        raise CommandError(f"{name}: no prompts in it")
    custom_ids = [custom_id for custom_id in ids if custom_id is not None]
    return prompts, custom_ids or None


def _jsonl_line(line: str, where: str) -> tuple[str, str | None]:
    try:
        value = json.loads(line)
    except ValueError as error:
        reason = getattr(error, "msg", str(error))
        column = getattr(error, "colno", None)
        at = f" at column {column}" if column is not None else ""
        raise CommandError(f"{where}: not JSON: {reason}{at}") from error
    if isinstance(value, str):
        return value, None
    if not isinstance(value, dict):
        raise CommandError(f'{where}: each line is a JSON object with a "prompt" (and '
                           f'optionally a "custom_id"), or a JSON string; got '
                           f"{type(value).__name__}")
    unknown = sorted(key for key in value if key not in JSONL_KEYS)
    if unknown:
        raise CommandError(f"{where}: unknown key {unknown[0]!r}: a line holds \"prompt\" and "
                           'optionally "custom_id"')
    prompt = value.get("prompt")
    if "prompt" not in value:
        raise CommandError(f'{where}: no "prompt" in the object')
    if not isinstance(prompt, str):
        raise CommandError(f'{where}: "prompt" must be a string, got {type(prompt).__name__}')
    custom_id = value.get("custom_id")
    if "custom_id" in value and not isinstance(custom_id, str):
        raise CommandError(f'{where}: "custom_id" must be a string, got '
                           f"{type(custom_id).__name__}")
    return prompt, custom_id


# --- saved handles --------------------------------------------------------------------------------


def state_dir() -> str:
    """Where batch handles are saved: ``$LLMBACKEND_STATE_DIR``, else
    ``$XDG_STATE_HOME/llmbackend/batches``, else ``~/.local/state/llmbackend/batches``."""
    explicit = os.environ.get("LLMBACKEND_STATE_DIR")
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state")
    return os.path.join(os.path.abspath(base), "llmbackend", "batches")


def handle_file_name(batch_id: str) -> str:
    """The file a batch's handle is saved in: the id percent-encoded (``/``, ``+`` and anything
    else a file system may not take), shortened with a hash when too long."""
    from urllib.parse import quote

    name = quote(batch_id, safe="")
    if len(name) > HANDLE_NAME_LIMIT:
        import hashlib

        name = f"{name[:150]}-{hashlib.sha256(batch_id.encode()).hexdigest()[:16]}"
    return name + ".json"


def _check_output(output: str | None) -> None:
    """``CommandError`` unless ``output`` (a file to write; ``None`` or ``-``: stdout) can be
    written: its directory exists and is writable."""
    if output is None or output == "-":
        return
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise CommandError(f"{output}: there is no directory {directory}")
    if not os.access(directory, os.W_OK):
        raise CommandError(f"{output}: cannot write in {directory}")


def _make_state_dir() -> None:
    directory = state_dir()
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as error:
        raise CommandError(f"cannot make the directory for batch handles, {directory} "
                           f"({error.strerror}): set LLMBACKEND_STATE_DIR to another") from error
    if not os.access(directory, os.W_OK):
        raise CommandError(f"cannot write batch handles in {directory}: set "
                           "LLMBACKEND_STATE_DIR to another directory")


def _save_handle(handle: Batch[Any]) -> str:
    """Save ``handle.to_dict()`` as JSON in the state directory, atomically (a temporary file
    renamed over the old one), readable by this user only; the path."""
    data = handle.to_dict()
    directory = state_dir()
    path = os.path.join(directory, handle_file_name(handle.id))
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        _write_atomically(path, lambda file: file.write(
            json.dumps(data, ensure_ascii=False, indent=2) + "\n"))
    except OSError as error:
        click.echo(handle.id)
        raise CommandError(f"batch {handle.id} was submitted, but its handle could not be saved "
                           f"in {directory} ({error.strerror}): come back to it with -p "
                           f"{handle.provider}") from error
    return path


def _write_atomically(path: str, write: Callable[[IO[str]], object]) -> None:
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".llmbackend-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise


def _load_handle(batch_id: str) -> tuple[dict[str, Any], str] | None:
    path = os.path.join(state_dir(), handle_file_name(batch_id))
    try:
        with open(path, encoding="utf-8") as file:
            saved = json.load(file)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CommandError(f"{path}: cannot read the saved handle: {error.strerror}") from error
    except ValueError as error:
        raise CommandError(f"{path}: the saved handle is not JSON ({error}): delete it, and "
                           "re-attach with -p PROVIDER") from error
    if not isinstance(saved, dict):
        raise CommandError(f"{path}: the saved handle is not a JSON object: delete it, and "
                           "re-attach with -p PROVIDER")
    return saved, path


def _open_batch(batch_id: str, provider: str | None, schema: StructuredOutput[Any] | None,
                options: Mapping[str, Any]) -> Batch[Any]:
    """The handle saved for ``batch_id``, restored; else re-attached by id on ``provider``."""
    import llmbackend

    found = _load_handle(batch_id)
    if found is not None:
        saved, path = found
        if provider is not None and provider.lower() != saved.get("provider"):
            raise CommandError(f"batch {batch_id} is a {saved.get('provider')!r} batch (its "
                               f"handle is {path}), not a {provider!r} one")
        return llmbackend.restore_batch(saved, schema, **options)
    if provider is None:
        raise CommandError(f"no saved handle for batch {batch_id!r} in {state_dir()}: give "
                           "-p PROVIDER to re-attach to it by id")
    from llmbackend.providers import LOCAL

    if provider.lower() in LOCAL:
        raise CommandError(f"{provider} runs its batches at once, in the process that submits "
                           "them: there is no batch to re-attach to (batch submit wrote its "
                           "results)")
    return llmbackend.get_batch(provider, batch_id, schema, **options)


def _id_command(function: F) -> F:
    """The arguments every ``batch <verb> ID`` command takes."""
    function = _connection_options(handle_commands=True)(function)
    function = _provider_option(required=False)(function)
    return click.argument("batch_id", metavar="ID")(function)


# --- status, wait, cancel, results ----------------------------------------------------------------


def _state_line(status: BatchStatus, counts: BatchCounts) -> str:
    return (f"{status.value} ({counts.completed + counts.failed} of {counts.total} requests "
            f"done: {counts.completed} completed, {counts.failed} failed)")


def _state_json(handle: Batch[Any], state: BatchState) -> str:
    counts = state.counts
    return _dumps({
        "id": handle.id, "provider": handle.provider, "status": state.status.value,
        "provider_status": state.status.raw, "ended": state.status.is_terminal,
        "counts": {"total": counts.total, "completed": counts.completed, "failed": counts.failed,
                   "pending": counts.pending},
        "raw": list(state.raw)})


@batch.command("status")
@_id_command
@click.option("--json", "as_json", is_flag=True,
              help="Print the whole state as JSON (status, counts, the provider's objects).")
@_debug_option
def status(*, batch_id: str, provider: str | None, option: dict[str, Any], timeout: float | None,
           max_retries: int | None, as_json: bool) -> int:
    """Print a batch's status and request counts (one line)."""
    handle = _open_batch(batch_id, provider, None,
                         _provider_options(option, timeout, max_retries))
    state = handle.state()
    click.echo(_state_json(handle, state) if as_json else _state_line(state.status,
                                                                       state.counts))
    return EXIT_OK


@batch.command("wait", epilog="Exit code 5 when --timeout passes first; the batch goes on.")
@_id_command
@click.option("--poll-interval", type=click.FloatRange(min=0, min_open=True), default=30.0,
              show_default=True, metavar="SECONDS", help="Seconds between two status checks.")
@click.option("--timeout", "wait_timeout", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Give up waiting after this long (default: wait as long as it takes).")
@_progress_option
@_debug_option
def wait(*, batch_id: str, provider: str | None, option: dict[str, Any], timeout: float | None,
         max_retries: int | None, poll_interval: float, wait_timeout: float | None,
         progress: bool | None) -> int:
    """Wait until a batch has ended; print its final status."""
    handle = _open_batch(batch_id, provider, None,
                         _provider_options(option, timeout, max_retries))
    ended = handle.wait(poll_interval=poll_interval, timeout=wait_timeout,
                        progress=_show_progress(progress))
    click.echo(_state_line(ended, handle.counts))  # the counts of wait's last poll
    return EXIT_OK


@batch.command("results", epilog="""\b
Each line: {"index": i, "custom_id": "...", "answer": ...} or
{"index": i, "custom_id": "...", "error": {"type": "...", "message": "...",
"retryable": ...}}, one per input, in input order. Exit code 4 when some items
failed (the file still has every line), 5 before the batch has ended.""")
@_id_command
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), metavar="FILE",
              help="Write the results here (default: stdout).")
@click.option("--schema", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="The JSON Schema the batch was submitted with (default: the one saved with "
              "the batch).")
@_debug_option
def results(*, batch_id: str, provider: str | None, option: dict[str, Any],
            timeout: float | None, max_retries: int | None, output: str | None,
            schema: str | None) -> int:
    """Write a batch's results, one JSON line per input."""
    import llmbackend

    _check_output(output)
    handle = _open_batch(batch_id, provider, _schema(schema),
                         _provider_options(option, timeout, max_retries))
    try:
        return _write_results(handle, output)
    except llmbackend.BatchNotReadyError as error:
        raise CommandError(f"batch {batch_id} has not ended yet (it is {error.status!r}): its "
                           f"results come once it has; llmbackend batch wait {batch_id} waits "
                           "for it", EXIT_NOT_READY) from error


def _write_results(handle: Batch[Any], output: str | None) -> int:
    """Write one JSON line per input (``-o FILE`` atomically, or stdout); exit 4 when any item
    failed."""
    outcomes = handle.outcomes(keep_raw=False)  # the answers only: a large batch stays small
    custom_ids = handle.custom_ids
    failed = 0

    def lines() -> Iterator[str]:
        nonlocal failed
        from returns.result import Failure

        for index, (custom_id, outcome) in enumerate(zip(custom_ids, outcomes, strict=True)):
            record: dict[str, Any] = {"index": index, "custom_id": custom_id}
            if isinstance(outcome, Failure):
                error: LLMError = outcome.failure()
                failed += 1
                record["error"] = {"type": type(error).__name__, "message": error.message,
                                   "retryable": error.retryable}
            else:
                record["answer"] = outcome.unwrap().parsed
            yield _dumps(record) + "\n"

    if output is None or output == "-":
        for line in lines():
            sys.stdout.write(line)
        sys.stdout.flush()
        where = "its line"
    else:
        try:
            _write_atomically(output, lambda file: file.writelines(lines()))
        except OSError as error:
            raise CommandError(f"{output}: cannot write the results: {error.strerror}"
                               ) from error
        where = f"its line in {output}"
    if failed:
        _error(f"{failed} of {len(outcomes)} items failed; every item has {where}, the failed "
               'ones with an "error"')
        return EXIT_PARTIAL
    return EXIT_OK


@batch.command("cancel")
@_id_command
@_debug_option
def cancel(*, batch_id: str, provider: str | None, option: dict[str, Any], timeout: float | None,
           max_retries: int | None) -> int:
    """Ask the provider to stop a batch; print its status afterwards."""
    handle = _open_batch(batch_id, provider, None,
                         _provider_options(option, timeout, max_retries))
    after = handle.cancel()
    click.echo(_state_line(after, handle.counts))  # as the cancel request answered
    return EXIT_OK


@batch.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the saved handles as JSON lines.")
@_debug_option
def list_batches(as_json: bool) -> int:
    """List the batch handles saved here (newest first)."""
    directory = state_dir()
    try:
        names = [name for name in os.listdir(directory)
                 if name.endswith(".json") and not name.startswith(".")]
    except FileNotFoundError:
        names = []
    entries = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            with open(path, encoding="utf-8") as file:
                saved = json.load(file)
            saved_at = os.path.getmtime(path)
        except (OSError, ValueError):
            continue
        if not isinstance(saved, dict):
            continue
        parts: list[Any] = saved["parts"] if isinstance(saved.get("parts"), list) else []
        sizes = [len(part["custom_ids"]) for part in parts
                 if isinstance(part, dict) and isinstance(part.get("custom_ids"), list)]
        entries.append((saved_at, {
            "id": saved.get("id"), "provider": saved.get("provider"),
            "model": saved.get("model"),
            "requests": sum(sizes) if parts and len(sizes) == len(parts) else None,
            "path": path}))
    import time

    for saved_at, entry in sorted(entries, key=lambda item: item[0], reverse=True):
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(saved_at))
        if as_json:
            click.echo(_dumps({**entry, "saved_at": when}))
        else:
            requests = "?" if entry["requests"] is None else entry["requests"]
            click.echo(f"{entry['id']}\t{entry['provider']}\t{entry['model']}\t"
                       f"{requests} requests\tsaved {when}")
    return EXIT_OK


# --- entry point ----------------------------------------------------------------------------------


def _exit_code(error: LLMError) -> int:
    from llmbackend.errors import (
        BatchItemsError,
        BatchNotReadyError,
        ConfigurationError,
        MissingCredentialsError,
        MissingDependencyError,
        UnsupportedError,
    )

    if isinstance(error, BatchNotReadyError):
        return EXIT_NOT_READY
    if isinstance(error, BatchItemsError):
        return EXIT_PARTIAL
    if isinstance(error, ConfigurationError | MissingCredentialsError | MissingDependencyError
                  | UnsupportedError):
        return EXIT_USAGE
    return EXIT_PROVIDER


def _llm_error_message(error: LLMError) -> str:
    from llmbackend.errors import MissingCredentialsError, UnsupportedError

    if isinstance(error, MissingCredentialsError) and error.env_var:
        return (f"MissingCredentialsError: no API key for {error.provider}: set the "
                f"{error.env_var} environment variable (keys are never taken on the command "
                "line)")
    message = f"{type(error).__name__}: {error.message}"
    if isinstance(error, UnsupportedError) and "drop_unsupported_params" in error.message:
        message += " (on the command line: -O drop_unsupported_params=true)"
    return message


def _traceback() -> None:
    if _debug:
        import traceback

        traceback.print_exc()


def _fail(message: str, code: int) -> int:
    _traceback()
    _error(message)
    return code


def _usage_message(error: click.ClickException) -> str:
    message = error.format_message()
    context = getattr(error, "ctx", None)
    if isinstance(error, click.UsageError) and context is not None:
        message += f" (see: {context.command_path} --help)"
    return message


def main(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``); the exit code."""
    global _debug
    _debug = False
    try:
        code = cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        return _interrupted()
    except KeyboardInterrupt:
        click.echo(err=True)
        return _interrupted()
    except click.ClickException as error:
        _error(_usage_message(error))
        return EXIT_USAGE if error.exit_code == 1 else error.exit_code
    except CommandError as error:
        return _fail(error.message, error.code)
    except _StdoutClosedError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as error:
        from llmbackend.errors import LLMError

        if isinstance(error, LLMError):
            return _fail(_llm_error_message(error), _exit_code(error))
        return _fail(f"internal error ({type(error).__name__}: {error}); rerun with --debug "
                     "for the traceback, and report it", EXIT_INTERNAL)
    return code if isinstance(code, int) else EXIT_OK


def _interrupted() -> int:
    _traceback()
    _error("interrupted (a batch already submitted goes on at the provider)")
    return EXIT_INTERRUPTED


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush at exit does not fail
    again on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass

