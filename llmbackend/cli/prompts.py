"""Effectful: reads the prompts: one from the argument or standard input (``run``), or one list
of messages from a JSON file or standard input (``run --messages``); many from a ``.txt`` or
``.jsonl`` file or standard input (``batch submit``), where a ``.jsonl`` line may hold a prompt or
a list of messages.

Every rule about a list of messages is the library's (``llmbackend.messages.check_input``): this
module only reads the JSON and says the library's ``ConfigurationError`` as a ``CommandError``
naming the file (and the line).

Plain functions: every problem is a ``CommandError`` naming the file and the line (this module
knows nothing of click).
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import TYPE_CHECKING

from llmbackend.cli.errors import CommandError

if TYPE_CHECKING:
    from llmbackend.messages import CheckedInput, Conversation

__all__ = ["JSONL_KEYS", "read_messages", "read_prompt", "read_prompts", "source_name"]

#: The keys a line of a .jsonl prompts file may hold: "prompt" or "messages" (exactly one of the
#: two), and optionally "custom_id".
JSONL_KEYS = ("prompt", "messages", "custom_id")
#: What a line of a .jsonl prompts file holds, as the messages say it.
_JSONL_LINE = ('a JSON object with a "prompt" (a string) or "messages" (a list of '
               '{"role": ..., "content": ...}), and optionally a "custom_id"')
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


def read_messages(path: str) -> Conversation:
    """The list of messages of ``run --messages``: the JSON list in the file ``path`` (``-``:
    standard input), checked by the library; ``CommandError`` naming the file otherwise."""
    name = source_name(path)
    data = _read(path, name).removeprefix(b"\xef\xbb\xbf")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CommandError(f"{name}: not UTF-8 text ({error.reason} at byte "
                           f"{error.start})") from error
    if not text.strip():
        raise CommandError(f"{name}: it is empty: give a JSON list of messages, "
                           f'[{{"role": "user", "content": "..."}}, ...]')
    value = _json(text, name)
    if not isinstance(value, list):
        raise CommandError(f"{name}: a messages file holds a JSON list of messages, "
                           f'[{{"role": "user", "content": "..."}}, ...]; got '
                           f"{type(value).__name__}")
    checked = _checked(value, name, "the input" if path == "-" else "the file")
    assert not isinstance(checked, str)  # a list is checked into a conversation
    return checked


def read_prompts(path: str, input_format: str | None
                 ) -> tuple[list[CheckedInput], list[str] | None]:
    """The inputs of a ``.txt`` or ``.jsonl`` file (``-``: standard input), and their custom
    ids when the file gives them; ``CommandError`` naming the file and line of any problem.

    ``.txt``: every line is one prompt (the line break at the end of the file ends the last
    line; it does not start an empty one). ``.jsonl``: every line is a JSON object with a string
    ``"prompt"`` or a list of messages ``"messages"`` (exactly one of the two; lines of both
    kinds may be mixed) and, on every line or on none, a string ``"custom_id"``; or a JSON
    string, the prompt. An input is the prompt string, or the conversation as a tuple of
    ``Message`` (checked by the library). An empty line, an empty prompt or a repeated custom id
    is an error.
    """
    name = source_name(path)
    if input_format is None:
        input_format = _format_of(path)
    lines = _lines(path, name)
    prompts: list[CheckedInput] = []
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
            each = "one prompt" if input_format == "txt" else "one prompt or list of messages"
            raise CommandError(f"{where}: empty line: every line is {each} (remove it)")
        given: str | list[object]
        if input_format == "txt":
            given, custom_id = line, None
        else:
            given, custom_id = _jsonl_line(line, where)
        checked: CheckedInput
        if isinstance(given, str):
            if not given.strip():
                raise CommandError(f"{where}: the prompt is empty")
            checked = _checked(given, where, "the prompt")
        else:
            checked = _checked(given, where, '"messages"')
        if custom_id is not None:
            _checked(custom_id, where, "the custom_id")
            first = seen.setdefault(custom_id, number)
            if first != number:
                raise CommandError(f"{where}: custom_id {custom_id!r} is already used on line "
                                   f"{first}; custom ids must be unique")
        if ids and (ids[0] is None) != (custom_id is None):
            have, lack = (1, number) if ids[0] is not None else (number, 1)
            raise CommandError(f"{where}: line {have} has a custom_id and line {lack} has none: "
                               "give every line a custom_id, or none")
        prompts.append(checked)
        ids.append(custom_id)
    if not prompts:
        raise CommandError(f"{name}: no prompts in it")
    custom_ids = [custom_id for custom_id in ids if custom_id is not None]
    return prompts, custom_ids or None


def _checked(value: str | list[object], where: str, what: str) -> CheckedInput:
    """``value`` (a prompt, or a list of messages) as the library checks it
    (``messages.check_input``: the one place of its rules, e.g. a JSON line may spell a lone
    surrogate, ``"\\ud800"``, which is no text); its ``ConfigurationError`` as a ``CommandError``
    naming ``where``, with the input called ``what`` ("the prompt", ``"messages"``)."""
    from llmbackend.errors import ConfigurationError
    from llmbackend.messages import check_input

    try:
        return check_input(value)
    except ConfigurationError as error:
        said = re.sub(r"\bof input\b", f"of {what}", re.sub(r"^input\b", what, error.message))
        raise CommandError(f"{where}: {said}") from None


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
    lines = _read(path, name).removeprefix(b"\xef\xbb\xbf").split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the line break that ends the last line
    return lines


def _read(path: str, name: str) -> bytes:
    """The bytes of the file ``path`` (``-``: standard input)."""
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise CommandError(f"{name}: cannot read it: {error.strerror}") from error


def _json(text: str, where: str) -> object:
    """The JSON value ``text`` holds; ``CommandError`` naming ``where`` (and the line and column
    in a text of several lines) otherwise."""
    try:
        return json.loads(text)
    except RecursionError:
        raise CommandError(f"{where}: the JSON is nested too deeply to read") from None
    except ValueError as error:
        reason = getattr(error, "msg", str(error))
        line, column = getattr(error, "lineno", None), getattr(error, "colno", None)
        if column is None:
            at = ""
        elif line is None or "\n" not in text:
            at = f" at column {column}"
        else:
            at = f" at line {line}, column {column}"
        raise CommandError(f"{where}: not JSON: {reason}{at}") from error


def _jsonl_line(line: str, where: str) -> tuple[str | list[object], str | None]:
    """The prompt (a string) or list of messages (not yet checked), and the custom id (or
    ``None``), of one line of a ``.jsonl`` file."""
    value = _json(line, where)
    if isinstance(value, str):
        return value, None
    if not isinstance(value, dict):
        hint = (' (a list of messages goes in {"messages": [...]})'
                if isinstance(value, list) else "")
        raise CommandError(f"{where}: each line is {_JSONL_LINE}, or a JSON string (the "
                           f"prompt); got {type(value).__name__}{hint}")
    unknown = sorted(key for key in value if key not in JSONL_KEYS)
    if unknown:
        raise CommandError(f"{where}: unknown key {unknown[0]!r}: a line holds \"prompt\" or "
                           '"messages", and optionally "custom_id"')
    given: str | list[object]
    if "prompt" in value and "messages" in value:
        raise CommandError(f'{where}: the object has both "prompt" and "messages": give '
                           "exactly one of the two (a prompt, or a list of messages)")
    if "messages" in value:
        messages = value["messages"]
        if not isinstance(messages, list):
            raise CommandError(f'{where}: "messages" must be a list of messages '
                               f'({{"role": ..., "content": ...}}), got '
                               f"{type(messages).__name__}")
        given = messages
    elif "prompt" in value:
        prompt = value["prompt"]
        if not isinstance(prompt, str):
            raise CommandError(f'{where}: "prompt" must be a string, got '
                               f"{type(prompt).__name__}")
        given = prompt
    else:
        raise CommandError(f'{where}: no "prompt" or "messages" in the object: give exactly '
                           "one of the two")
    custom_id = value.get("custom_id")
    if "custom_id" in value and not isinstance(custom_id, str):
        raise CommandError(f'{where}: "custom_id" must be a string, got '
                           f"{type(custom_id).__name__}")
    return given, custom_id
