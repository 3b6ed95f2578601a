"""Effectful: the state directory where ``batch submit`` saves native batches' handles
(``Batch.to_dict()`` as JSON, one file per batch), and reading them back.

A handle's fields are read only by the library: ``restore_batch`` takes the dict whole, and the
listing shows what ``llmbackend.jobs.saved.summarize`` makes of it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import suppress
from typing import IO, TYPE_CHECKING, Any, NamedTuple

import click

from llmbackend.cli.errors import CommandError

if TYPE_CHECKING:
    from llmbackend.jobs import Batch
    from llmbackend.jobs.saved import SavedSummary

__all__ = [
    "HANDLE_NAME_LIMIT",
    "HANDLE_SIZE_LIMIT",
    "SavedHandleFile",
    "handle_file_name",
    "load_handle",
    "make_state_dir",
    "save_handle",
    "saved_handles",
    "state_dir",
    "write_atomically",
]

#: Longest handle file name before it is shortened with a hash (file systems allow 255 bytes).
HANDLE_NAME_LIMIT = 200
#: The largest file the listing reads as a handle (a handle holds its custom ids: a batch of
#: 100,000 requests saves a few megabytes).
HANDLE_SIZE_LIMIT = 64 * 1024 * 1024


class SavedHandleFile(NamedTuple):
    """One saved handle, as the listing shows it."""

    path: str
    #: When it was saved (the file's modification time, seconds since the epoch).
    saved_at: float
    summary: SavedSummary


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
    else a file system may not take), shortened with a hash when too long. Never raises,
    whatever the string (a command-line argument that is not UTF-8 holds lone surrogates)."""
    from urllib.parse import quote

    raw = batch_id.encode("utf-8", "surrogatepass")
    name = quote(raw, safe="")
    if len(name) > HANDLE_NAME_LIMIT:
        import hashlib

        name = f"{name[:150]}-{hashlib.sha256(raw).hexdigest()[:16]}"
    return name + ".json"


def make_state_dir() -> None:
    """Make the state directory (this user's only) if need be; ``CommandError`` unless it can
    be written."""
    directory = state_dir()
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as error:
        raise CommandError(f"cannot make the directory for batch handles, {directory} "
                           f"({error.strerror}): set LLMBACKEND_STATE_DIR to another") from error
    if not os.access(directory, os.W_OK):
        raise CommandError(f"cannot write batch handles in {directory}: set "
                           "LLMBACKEND_STATE_DIR to another directory")


def save_handle(handle: Batch[Any]) -> str:
    """Save ``handle.to_dict()`` as JSON in the state directory, atomically (a temporary file
    renamed over the old one), readable by this user only; the path."""
    data = handle.to_dict()
    text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (in a model name...): escape it all
            text = json.dumps(data, indent=2) + "\n"
    directory = state_dir()
    path = os.path.join(directory, handle_file_name(handle.id))
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        write_atomically(path, lambda file: file.write(text))
    except OSError as error:
        click.echo(handle.id)  # the batch runs at the provider: its id must not be lost
        raise CommandError(f"batch {handle.id} was submitted, but its handle could not be saved "
                           f"in {directory} ({error.strerror}): come back to it with -p "
                           f"{handle.provider}") from error
    return path


def write_atomically(path: str, write: Callable[[IO[str]], object]) -> None:
    """Write the file ``path`` with ``write``: into a temporary file beside it, renamed over
    ``path`` once complete, so that ``path`` is never half written."""
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


def load_handle(batch_id: str) -> tuple[dict[str, Any], str] | None:
    """The handle saved for ``batch_id`` and its path; ``None`` when there is none;
    ``CommandError`` when its file cannot be read or holds no JSON object."""
    path = os.path.join(state_dir(), handle_file_name(batch_id))
    try:
        saved, _ = _read_handle(path)
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


def saved_handles() -> list[SavedHandleFile]:
    """The handles saved in the state directory, newest first.

    Strategy: a listing shows what it can, and one bad file never hides the others: a file that
    is not a regular file (a FIFO, which would block, a directory, a device), is larger than
    ``HANDLE_SIZE_LIMIT``, cannot be read, or holds no JSON object (or JSON nested too deep to
    read) is left out, and ``summarize`` leaves out (``None``) any field a hand-edited file gets
    wrong.
    """
    from llmbackend.jobs.saved import summarize

    directory = state_dir()
    try:
        # Not the temporary files of ``write_atomically`` (``.llmbackend-*.tmp``); a handle
        # whose id starts with a dot is listed like any other.
        names = [name for name in os.listdir(directory) if name.endswith(".json")]
    except FileNotFoundError:
        names = []
    found = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            saved, saved_at = _read_handle(path)
        except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
            continue
        if isinstance(saved, dict):
            found.append(SavedHandleFile(path=path, saved_at=saved_at, summary=summarize(saved)))
    return sorted(found, key=lambda entry: entry.saved_at, reverse=True)


def _read_handle(path: str) -> tuple[object, float]:
    """The JSON in the handle file ``path`` and the file's modification time. ``OSError``
    (``FileNotFoundError`` when there is none) unless it is a regular file of at most
    ``HANDLE_SIZE_LIMIT`` bytes, ``ValueError`` unless it holds JSON (nested too deep counts as
    not JSON). It is opened without blocking, so that a FIFO put there between a check and the
    open cannot hang the command, and checked on the open file."""
    import errno
    import stat

    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    with os.fdopen(os.open(path, flags), "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        data = file.read(HANDLE_SIZE_LIMIT + 1)
    if len(data) > HANDLE_SIZE_LIMIT:
        raise OSError(errno.EFBIG, f"larger than {HANDLE_SIZE_LIMIT:,} bytes")
    try:
        return json.loads(data.decode("utf-8")), info.st_mtime
    except RecursionError:
        raise ValueError("JSON nested too deep to read") from None
