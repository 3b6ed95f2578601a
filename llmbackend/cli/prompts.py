"""Effectful: reads the prompts: one from the argument or standard input (``run``), many from a
``.txt`` or ``.jsonl`` file or standard input (``batch submit``).

Plain functions: every problem is a ``CommandError`` naming the file and the line (this module
knows nothing of click).
"""

from __future__ import annotations

import json
import os
import sys

from llmbackend.cli.errors import CommandError

__all__ = ["JSONL_KEYS", "read_prompt", "read_prompts", "source_name"]

#: The keys a line of a .jsonl prompts file may hold.
JSONL_KEYS = ("prompt", "custom_id")
#: How a prompts file is written, by its extension.
_FORMATS = {".txt": "txt", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def source_name(path: str) -> str:
    """The prompts file ``path`` as messages name it: ``<stdin>`` for ``-``."""
    return "<stdin>" if path == "-" else path


def read_prompt(prompt: str | None) -> str:
    """The one prompt of ``run``: ``prompt``, or standard input when it is ``None`` or ``-``."""
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


def read_prompts(path: str, input_format: str | None) -> tuple[list[str], list[str] | None]:
    """The prompts of a ``.txt`` or ``.jsonl`` file (``-``: standard input), and their custom
    ids when the file gives them; ``CommandError`` naming the file and line of any problem.

    ``.txt``: every line is one prompt (the line break at the end of the file ends the last
    line; it does not start an empty one). ``.jsonl``: every line is a JSON object with a string
    ``"prompt"`` and, on every line or on none, a string ``"custom_id"``; or a JSON string, the
    prompt. An empty line, an empty prompt or a repeated custom id is an error.
    """
    name = source_name(path)
    if input_format is None:
        input_format = _format_of(path)
    lines = _lines(path, name)
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
        _check_text(prompt, where, "the prompt")
        if custom_id is not None:
            _check_text(custom_id, where, "the custom_id")
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


def _check_text(text: str, where: str, what: str) -> None:
    """``CommandError`` naming the line if ``text`` cannot be sent (a JSON line may spell a lone
    surrogate, ``"\\ud800"``, which is no text), said the way the library says it."""
    from llmbackend.errors import ConfigurationError
    from llmbackend.messages import check_input

    try:
        check_input(text)
    except ConfigurationError as error:
        raise CommandError(f"{where}: {what} {error.message.removeprefix('input ')}") from None


def _format_of(path: str) -> str:
    """How the prompts file ``path`` is written, from its extension (``--input-format`` not
    given)."""
    if path == "-":
        raise CommandError("reading prompts from standard input: say how they are written, "
                           "with --input-format txt (one prompt per line) or --input-format "
                           "jsonl (one JSON object per line)")
    input_format = _FORMATS.get(os.path.splitext(path)[1].lower())
    if input_format is None:
        raise CommandError(f"{path}: cannot tell how the prompts are written from the file "
                           "name: name it .txt (one prompt per line) or .jsonl (one JSON "
                           "object per line), or give --input-format")
    return input_format


def _lines(path: str, name: str) -> list[bytes]:
    """The lines of ``path`` (``-``: standard input), without a byte order mark, and without the
    empty line after the line break that ends the last line."""
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
    return lines


def _jsonl_line(line: str, where: str) -> tuple[str, str | None]:
    """The prompt and custom id (or ``None``) of one line of a ``.jsonl`` file."""
    try:
        value = json.loads(line)
    except RecursionError:
        raise CommandError(f"{where}: the JSON is nested too deeply to read") from None
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
