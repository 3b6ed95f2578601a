"""Effectful: the ``llmbackend`` command line (also ``python -m llmbackend``); ``main`` runs it.

A thin shell over the public API: each command turns its arguments into one call of
``llmbackend.generate``, ``create_batch``, ``get_batch`` or ``restore_batch`` (and the handle's
``state``, ``wait``, ``outcomes``, ``cancel``), and writes what came back. It reads files and
standard input, saves batch handles (``Batch.to_dict()``) in a state directory, and maps errors to
exit codes; it never talks to a provider itself.

The package, module by module:

- ``errors``: the exit codes, the table of library error -> exit code, one-line messages;
- ``debugging``: the ``--debug`` switch;
- ``prompts``: reading prompts (or lists of messages) from the argument, a file or standard
  input (no click);
- ``handles``: the state directory of saved batch handles;
- ``options``: the shared click options, and the config / provider options / schema they give;
- ``output`` (pure): the lines printed; ``results``: writing a batch's results;
- ``commands``: the ``llmbackend`` group and ``run``; ``batch``: the ``batch`` group;
- ``entry``: ``main``, which runs the group and turns what went wrong into an exit code.

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

from llmbackend.cli.commands import cli
from llmbackend.cli.entry import main
from llmbackend.cli.handles import handle_file_name, state_dir
from llmbackend.cli.prompts import read_prompts

__all__ = ["cli", "handle_file_name", "main", "read_prompts", "state_dir"]
