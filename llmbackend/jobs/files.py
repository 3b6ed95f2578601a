"""Effectful: the spooled files of batch jobs: writing input parts, reading result lines, and
downloading a provider's file over the transport.

Strategy: every input part is written to a spooled temporary file (memory up to
``SPOOL_MEMORY``, disk beyond) before the first upload, so that a bad input fails before
anything is sent and any job size runs in bounded memory. Downloads land in the same kind of
file and are read back line by line. The caller closes every file it is given.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO

from returns.result import Failure, Result, Success

from llmbackend.batching import split_lines
from llmbackend.errors import LLMError
from llmbackend.transport import HTTPTransport
from llmbackend.types import WireRequest, WireResponse

__all__ = [
    "CHUNK",
    "SPOOL_MEMORY",
    "chunks",
    "download",
    "lines",
    "require_success",
    "spool",
    "write_parts",
]

#: Spooled files stay in memory up to this size, then move to disk.
SPOOL_MEMORY = 8 * 1024 * 1024
#: The size of the pieces an upload body is streamed in.
CHUNK = 1024 * 1024


def spool() -> IO[bytes]:
    """A new spooled temporary file (read at call time: tests shrink ``SPOOL_MEMORY``)."""
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)


def lines(sink: IO[bytes]) -> Iterator[bytes]:
    """The non-blank lines of ``sink``, from its start."""
    sink.seek(0)
    for line in sink:
        if line.strip():
            yield line


def chunks(sink: IO[bytes]) -> Callable[[], Iterator[bytes]]:
    """``sink``'s bytes as a replayable stream of chunks (an upload may be retried)."""
    def read() -> Iterator[bytes]:
        sink.seek(0)
        while chunk := sink.read(CHUNK):
            yield chunk

    return read


def write_parts(items: Iterable[bytes], max_count: int, max_bytes: int, separator: bytes = b""
                ) -> tuple[list[IO[bytes]], list[int], list[int]]:
    """The input lines written to one spooled file per part (``separator`` between two lines of
    a part), with each part's size and count. The caller closes the files."""
    files: list[IO[bytes]] = []
    sizes: list[int] = []
    counts: list[int] = []
    try:
        for part, line in split_lines(items, max_count=max_count, max_bytes=max_bytes):
            if part == len(files):
                files.append(spool())
                sizes.append(0)
                counts.append(0)
            elif separator:
                sizes[part] += files[part].write(separator)
            files[part].write(line)
            sizes[part] += len(line)
            counts[part] += 1
    except BaseException:
        for sink in files:
            sink.close()
        raise
    return files, sizes, counts


def require_success(response: WireResponse, parse_error: Callable[[WireResponse], LLMError]
                    ) -> Result[WireResponse, LLMError]:
    """``response`` if it is a 2xx answer, else the provider's parsed error (``parse_error``,
    from the provider's module), as for any other request."""
    if 200 <= response.status < 300:
        return Success(response)
    return Failure(parse_error(response))


def download(transport: HTTPTransport, request: WireRequest, sink: IO[bytes],
             parse_error: Callable[[WireResponse], LLMError]) -> Result[WireResponse, LLMError]:
    """Download ``request``'s body into ``sink``; a non-2xx answer becomes the provider's
    parsed error (``require_success``). The one download of every job."""
    return transport.download(request, sink).bind(
        lambda response: require_success(response, parse_error))
