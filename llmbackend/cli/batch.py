"""Effectful: the ``llmbackend batch`` commands: submit a file of prompts, then, by the batch's
id, its status, wait, results and cancel; and the list of the handles saved here.

A native batch's handle is saved at submit (``handles``); the ID commands restore it from
there, or re-attach by id on the provider named with ``-p``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from llmbackend.cli.errors import EXIT_OK, CommandError, exit_code, llm_error_message, say
from llmbackend.cli.handles import (
    load_handle,
    make_state_dir,
    save_handle,
    saved_handles,
    state_dir,
)
from llmbackend.cli.options import (
    connection_options,
    debug_option,
    generation_config,
    generation_options,
    id_arguments,
    model_option,
    progress_option,
    provider_option,
    provider_options,
    read_schema,
    show_progress,
)
from llmbackend.cli.output import (
    saved_handle_json,
    saved_handle_line,
    shown,
    state_json,
    state_line,
)
from llmbackend.cli.prompts import source_name
from llmbackend.cli.results import check_output, output_file, write_results

if TYPE_CHECKING:
    from llmbackend.errors import LLMError
    from llmbackend.jobs import Batch
    from llmbackend.types import StructuredOutput

__all__ = ["batch", "cancel", "list_batches", "open_batch", "results", "status", "submit", "wait"]


class _Batches(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order of the workflow, not alphabetical


@click.group(cls=_Batches, epilog="A native batch's handle is saved at submit; the ID commands "
             "find it there, or re-attach by id with -p PROVIDER.")
def batch() -> None:
    """Batch jobs: submit many prompts, check on them, collect the answers."""


# --- submit ---------------------------------------------------------------------------------------


@batch.command("submit", epilog="""\b
PROMPTS is a file, or - for standard input (with --input-format):
  .txt    one prompt per line
  .jsonl  one JSON object per line, {"prompt": "...", "custom_id": "..."}
          or {"messages": [{"role": "user", "content": "..."}], ...}
          (custom_id optional: all lines or none), or a JSON string per line

A native batch (OpenAI and Gemini by default; Anthropic with --mode native)
prints its id on stdout and saves its handle. An immediate or local batch has
run when submit returns: its results are written at once, to -o FILE or to
stdout, and its id goes to stderr.""")
@provider_option(required=True)
@model_option
@click.argument("prompts", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@generation_options
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
@progress_option
@connection_options(handle_commands=False)
@debug_option
def submit(*, provider: str, model: str, prompts: str, system: str | None,
           temperature: float | None, top_p: float | None, max_tokens: int | None,
           seed: int | None, extra: dict[str, Any], schema: str | None,
           display_name: str | None, mode: str | None, concurrency: int | None,
           input_format: str | None, output: str | None, progress: bool | None,
           option: dict[str, Any], timeout: float | None, max_retries: int | None) -> int:
    """Submit a file of prompts (or lists of messages) as one batch.

    A native batch prints its id; a batch that runs at once writes its results.
    """
    # Strategy: read_prompts is looked up on the package, the name users and tests import, so
    # that replacing it there (a test plants a bug in the command line that way) replaces it
    # here too.
    from llmbackend import cli as package

    inputs, custom_ids = package.read_prompts(prompts, input_format)
    first = next((number for number, given in enumerate(inputs, start=1)
                  if not isinstance(given, str)), None)
    config = generation_config(provider=provider, temperature=temperature, top_p=top_p,
                               max_tokens=max_tokens, seed=seed, system=system, extra=extra,
                               messages_in=None if first is None else
                               f"{source_name(prompts)}:{first}")
    structured = read_schema(schema)
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
    if immediate and show_progress(progress):
        batch_options["progress"] = True
    # Checked before anything is sent: a batch that ran must not be lost for want of a place to
    # write its results (or its handle).
    if immediate:
        check_output(output)
    else:
        make_state_dir()
    import llmbackend

    try:
        handle = llmbackend.create_batch(inputs, provider, model, config, structured,
                                         batch_options,
                                         **provider_options(option, timeout, max_retries))
    except (llmbackend.ConfigurationError, llmbackend.UnsupportedError) as error:
        if isinstance(error, llmbackend.ConfigurationError) and error.key == "custom_ids":
            raise CommandError(f"{error.message} (input #i is line i+1 of "
                               f"{source_name(prompts)})") from error
        # One input refused (a conversation the provider cannot take): name its line.
        line = _input_line(error, prompts)
        if line is None:
            raise
        raise CommandError(f"{llm_error_message(error)} ({line})", exit_code(error)) from error
    if isinstance(handle, llmbackend.CompletedBatch):
        counts = handle.counts
        say(f"batch {handle.id} ran at once: {counts.total} prompts, {counts.completed} "
            f"succeeded, {counts.failed} failed; results on {output_file(output) or 'stdout'}")
        return write_results(handle, output)
    path = save_handle(handle)
    click.echo(handle.id)
    say(f"submitted {handle.provider} batch {handle.id} ({len(inputs)} prompts); handle "
        f"saved in {path}")
    return EXIT_OK


def _input_line(error: LLMError, prompts: str) -> str | None:
    """Where the input a library error refuses (``input #i ...``) came from,
    ``input #i is FILE:LINE``; ``None`` for an error about no one input."""
    found = re.match(r"input #(\d+)\b", error.message)
    if found is None:
        return None
    index = int(found[1])
    return f"input #{index} is {source_name(prompts)}:{index + 1}"


def _default_mode(provider: str) -> str:
    """What ``--mode`` is when not given: the provider's (``immediate`` on local ones)."""
    from llmbackend.providers import registration

    return registration(provider).default_batch_mode


# --- the ID commands ------------------------------------------------------------------------------


def open_batch(batch_id: str, provider: str | None, schema: StructuredOutput[Any] | None,
               options: Mapping[str, Any]) -> Batch[Any]:
    """The handle saved for ``batch_id``, restored; else re-attached by id on ``provider``."""
    import llmbackend
    from llmbackend.jobs.saved import summarize
    from llmbackend.providers import is_local

    found = load_handle(batch_id)
    if found is not None:
        saved, path = found
        saved_provider = summarize(saved).provider
        if provider is not None and provider.lower() != saved_provider:
            raise CommandError(f"batch {shown(batch_id)} is a {saved_provider!r} batch (its "
                               f"handle is {path}), not a {provider!r} one")
        return llmbackend.restore_batch(saved, schema, **options)
    if provider is None:
        raise CommandError(f"no saved handle for batch {batch_id!r} in {state_dir()}: give "
                           "-p PROVIDER to re-attach to it by id")
    if is_local(provider):
        raise CommandError(f"{provider} runs its batches at once, in the process that submits "
                           "them: there is no batch to re-attach to (batch submit wrote its "
                           "results)")
    return llmbackend.get_batch(provider, batch_id, schema, **options)


@batch.command("status")
@id_arguments
@click.option("--json", "as_json", is_flag=True,
              help="Print the whole state as JSON (status, counts, the provider's objects).")
@debug_option
def status(*, batch_id: str, provider: str | None, option: dict[str, Any], timeout: float | None,
           max_retries: int | None, as_json: bool) -> int:
    """Print a batch's status and request counts (one line)."""
    handle = open_batch(batch_id, provider, None, provider_options(option, timeout, max_retries))
    state = handle.state()
    click.echo(state_json(handle, state) if as_json else state_line(state.status, state.counts))
    return EXIT_OK


@batch.command("wait", epilog="Exit code 5 when --timeout passes first; the batch goes on.")
@id_arguments
@click.option("--poll-interval", type=click.FloatRange(min=0, min_open=True), default=30.0,
              show_default=True, metavar="SECONDS", help="Seconds between two status checks.")
@click.option("--timeout", "wait_timeout", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Give up waiting after this long (default: wait as long as it takes).")
@progress_option
@debug_option
def wait(*, batch_id: str, provider: str | None, option: dict[str, Any], timeout: float | None,
         max_retries: int | None, poll_interval: float, wait_timeout: float | None,
         progress: bool | None) -> int:
    """Wait until a batch has ended; print its final status."""
    handle = open_batch(batch_id, provider, None, provider_options(option, timeout, max_retries))
    ended = handle.wait(poll_interval=poll_interval, timeout=wait_timeout,
                        progress=show_progress(progress))
    click.echo(state_line(ended, handle.counts))  # the counts of wait's last poll
    return EXIT_OK


@batch.command("results", epilog="""\b
Each line: {"index": i, "custom_id": "...", "answer": ...} or
{"index": i, "custom_id": "...", "error": {"type": "...", "message": "...",
"retryable": ...}}, one per input, in input order. Exit code 4 when some items
failed (the file still has every line), 5 before the batch has ended.""")
@id_arguments
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), metavar="FILE",
              help="Write the results here (default: stdout).")
@click.option("--schema", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="The JSON Schema the batch was submitted with (default: the one saved with "
              "the batch).")
@debug_option
def results(*, batch_id: str, provider: str | None, option: dict[str, Any],
            timeout: float | None, max_retries: int | None, output: str | None,
            schema: str | None) -> int:
    """Write a batch's results, one JSON line per input."""
    import llmbackend

    check_output(output)
    handle = open_batch(batch_id, provider, read_schema(schema),
                        provider_options(option, timeout, max_retries))
    try:
        return write_results(handle, output)
    except llmbackend.BatchNotReadyError as error:
        raise CommandError(f"batch {batch_id} has not ended yet (it is {error.status!r}): its "
                           f"results come once it has; llmbackend batch wait {batch_id} waits "
                           "for it", exit_code(error)) from error


@batch.command("cancel")
@id_arguments
@debug_option
def cancel(*, batch_id: str, provider: str | None, option: dict[str, Any], timeout: float | None,
           max_retries: int | None) -> int:
    """Ask the provider to stop a batch; print its status afterwards."""
    handle = open_batch(batch_id, provider, None, provider_options(option, timeout, max_retries))
    after = handle.cancel()
    click.echo(state_line(after, handle.counts))  # as the cancel request answered
    return EXIT_OK


# --- list -----------------------------------------------------------------------------------------


@batch.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the saved handles as JSON lines.")
@debug_option
def list_batches(as_json: bool) -> int:
    """List the batch handles saved here (newest first)."""
    import time

    for saved in saved_handles():
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(saved.saved_at))
        click.echo(saved_handle_json(saved.summary, saved.path, when) if as_json
                   else saved_handle_line(saved.summary, when))
    return EXIT_OK
