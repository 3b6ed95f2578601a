"""Effectful: the ``llmbackend`` group (``--version``, ``--debug``, the exit codes in its help)
and its ``run`` command; the ``batch`` group comes from ``batch``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from llmbackend.cli.batch import batch
from llmbackend.cli.debugging import enable_debug
from llmbackend.cli.errors import EXIT_OK, StdoutClosedError, show_warnings_in_one_line
from llmbackend.cli.options import (
    connection_options,
    debug_option,
    generation_config,
    generation_options,
    model_option,
    provider_option,
    provider_options,
    read_schema,
)
from llmbackend.cli.output import dumps, generation_json
from llmbackend.cli.prompts import read_messages, read_prompt, source_name

if TYPE_CHECKING:
    from llmbackend import TextStream
    from llmbackend.messages import CheckedInput

__all__ = ["EPILOG", "cli", "run"]

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


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError as error:
            raise StdoutClosedError from error


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
    show_warnings_in_one_line()
    if debug:
        enable_debug()


@cli.command(epilog="""\b
The prompt is read from standard input when PROMPT is omitted or is -.
--messages FILE sends a conversation instead of PROMPT: FILE (- for standard
input) is a JSON list of messages, e.g.
  [{"role": "system", "content": "Be brief."},
   {"role": "user", "content": "Name a river."}]
(roles: system, user, assistant).

\b
The answer is streamed (printed as it arrives) when standard output is a
terminal, and printed whole otherwise; --stream / --no-stream choose. With
--schema it is printed whole, as parsed JSON, unless --stream is given: then
the raw JSON text is streamed, and validated at the end. --json never streams.""")
@provider_option(required=True)
@model_option
@click.argument("prompt", required=False)
@click.option("--messages", "messages_file", metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, allow_dash=True),
              help="Send this list of messages (a JSON file; - for standard input) instead of "
              "PROMPT.")
@generation_options
@click.option("--json", "as_json", is_flag=True,
              help="Print the whole result as JSON: text, parsed answer, finish reason, usage, "
              "provider, model, response id.")
@click.option("--stream/--no-stream", "stream", default=None,
              help="Print the answer as it arrives (default: when standard output is a "
              "terminal and no --schema is given). Not with --json.")
@connection_options(handle_commands=False)
@debug_option
def run(*, provider: str, model: str, prompt: str | None, messages_file: str | None,
        system: str | None, temperature: float | None, top_p: float | None,
        max_tokens: int | None, seed: int | None, extra: dict[str, Any], schema: str | None,
        as_json: bool, stream: bool | None, option: dict[str, Any], timeout: float | None,
        max_retries: int | None) -> int:
    """Send one prompt (or a list of messages) and print the answer."""
    if as_json and stream:
        raise click.UsageError("--stream and --json do not go together: --json prints the "
                               "whole result once the answer has ended",
                               ctx=click.get_current_context())
    given: CheckedInput
    if messages_file is None:
        given = read_prompt(prompt)
    elif prompt is not None:
        raise click.UsageError(f"give the prompt as PROMPT or as --messages FILE, not both "
                               f"(got PROMPT {prompt!r} and --messages {messages_file})",
                               ctx=click.get_current_context())
    else:
        given = read_messages(messages_file)
    config = generation_config(provider=provider, temperature=temperature, top_p=top_p,
                               max_tokens=max_tokens, seed=seed, system=system, extra=extra,
                               messages_in=None if isinstance(given, str) else
                               f"--messages {source_name(messages_file or '-')}")
    structured = read_schema(schema)
    import llmbackend
    from llmbackend.errors import unwrap

    options = provider_options(option, timeout, max_retries)
    if stream is None:  # the default: stream to a terminal, unless the answer is parsed JSON
        stream = not as_json and structured is None and sys.stdout.isatty()
    if stream:
        return _print_stream(llmbackend.stream(provider, model, given, config, structured,
                                               **options))
    generation = unwrap(llmbackend.generate(provider, model, given, config, structured,
                                            **options))
    if as_json:
        click.echo(generation_json(generation))
    elif structured is not None:
        click.echo(dumps(generation.parsed))
    else:
        click.echo(generation.text)
    return EXIT_OK


def _print_stream(stream: TextStream[Any]) -> int:
    """``run --stream``: each delta printed (and flushed) as it arrives, then a line break.
    A failure after text ends the partial text with a line break before it is raised (its
    error line goes to stderr); a Ctrl-C or a closed stdout closes the connection at once
    (leaving the ``with``)."""
    from llmbackend.errors import LLMError

    printed = False
    try:
        with stream:
            for delta in stream:
                click.echo(delta, nl=False)  # click.echo flushes
                printed = True
    except LLMError:
        if printed:
            click.echo()
        raise
    click.echo()
    return EXIT_OK


cli.add_command(batch)
