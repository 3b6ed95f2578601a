"""Effectful: run one call per item, many at once, in bounded memory; the results in input order.

Strategy: a sliding window over the input. At most ``concurrency`` calls run at a time (worker
threads, or tasks on the running event loop) and at most ``2 x concurrency`` items are taken from
the input before their results are handed back, so a generator of a million prompts runs in the
memory of a few dozen. Results come back in input order: the window waits on its oldest item,
while the calls behind it go on. Items are matched to results by position in the window only,
never by arrival, so no result can be handed to the wrong input.

Used by ``Client.map`` / ``Client.amap`` and by immediate batches; local models go through
``chunked_map`` (a chunk per batched run) instead. The inputs are checked here too, lazily.
"""

from __future__ import annotations

from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Sequence,
)
from itertools import islice
from typing import TYPE_CHECKING, TypeVar

from llmbackend.checks import check_iterable_inputs
from llmbackend.messages import Conversation, check_input
from llmbackend.progress import progress_callback

if TYPE_CHECKING:
    import asyncio
    from concurrent.futures import Future

__all__ = [
    "WINDOW_FACTOR",
    "Progress",
    "achecked_prompts",
    "achunked_map",
    "aordered_map",
    "awith_progress",
    "checked_prompts",
    "chunked_map",
    "input_length",
    "ordered_map",
    "with_progress",
]

X = TypeVar("X")
R = TypeVar("R")

#: ``progress(done, total)``: ``total`` is ``None`` when the input's length is unknown.
Progress = Callable[[int, "int | None"], object]

#: How many items the window takes ahead of the oldest unfinished one, per unit of concurrency:
#: enough that a slow item does not idle the workers, few enough to bound memory.
WINDOW_FACTOR = 2


def ordered_map(run: Callable[[X], R], items: Iterable[X], concurrency: int, *,
                progress: Progress | None = None, total: int | None = None) -> Iterator[R]:
    """Effectful: ``run(item)`` for each item, ``concurrency`` at a time on worker threads; the
    results in input order, as a lazy iterator (nothing starts before the first ``next``).

    ``progress(done, total)`` is called in the consuming thread before each result is handed
    back. An exception raised by ``run`` is re-raised at that item's place (``run`` should return
    failures, not raise them). Stopping early (``break``, ``close()``) cancels the items not yet
    started and waits for the calls in flight.
    """
    if concurrency <= 1:
        for done, item in enumerate(items, 1):
            result = run(item)
            if progress is not None:
                progress(done, total)
            yield result
        return
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="llmbackend")
    window: deque[Future[R]] = deque()
    source = iter(items)
    limit = WINDOW_FACTOR * concurrency
    done = 0
    # An error raised while reading the input (a bad item) is raised at that item's place:
    # the results of the items before it, already sent, are handed back first.
    unreadable: BaseException | None = None
    try:
        while True:
            while unreadable is None and len(window) < limit:
                try:
                    item = next(source)
                except StopIteration:
                    break
                except Exception as exc:  # re-raised below, in its place
                    unreadable = exc
                    break
                window.append(pool.submit(run, item))
            if not window:
                if unreadable is not None:
                    raise unreadable
                return
            result = window.popleft().result()
            done += 1
            if progress is not None:
                progress(done, total)
            yield result
    finally:
        for future in window:
            future.cancel()
        pool.shutdown(wait=True)


async def aordered_map(run: Callable[[X], Awaitable[R]], items: Iterable[X] | AsyncIterable[X],
                       concurrency: int, *, progress: Progress | None = None,
                       total: int | None = None) -> AsyncIterator[R]:
    """Effectful, async: ``ordered_map`` as tasks on the running event loop; ``items`` may be
    an iterable or an async iterable. Stopping early cancels the calls in flight."""
    import asyncio

    semaphore = asyncio.Semaphore(concurrency)

    async def limited(item: X) -> R:
        async with semaphore:
            return await run(item)

    window: deque[asyncio.Task[R]] = deque()
    source = _aiter(items)
    limit = WINDOW_FACTOR * concurrency
    done = 0
    exhausted = False
    unreadable: BaseException | None = None  # raised in its place, as in ``ordered_map``
    try:
        while True:
            while not exhausted and len(window) < limit:
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    exhausted = True
                    break
                except Exception as exc:  # re-raised below, in its place
                    unreadable, exhausted = exc, True
                    break
                window.append(asyncio.ensure_future(limited(item)))
            if not window:
                if unreadable is not None:
                    raise unreadable
                return
            result = await window.popleft()
            done += 1
            if progress is not None:
                progress(done, total)
            yield result
    finally:
        for task in window:
            task.cancel()
        if window:
            await asyncio.gather(*window, return_exceptions=True)


async def _aiter(items: Iterable[X] | AsyncIterable[X]) -> AsyncIterator[X]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


def chunked_map(run_chunk: Callable[[list[X]], Sequence[R]], items: Iterator[X], size: int, *,
                progress: Progress | None = None, total: int | None = None) -> Iterator[R]:
    """Effectful: ``run_chunk`` on ``size`` items at a time (a local model's batched run), one
    result per item, in input order; only one chunk is in memory at a time."""
    done = 0
    while chunk := list(islice(items, size)):
        for result in _one_per_item(chunk, run_chunk(chunk)):
            done += 1
            if progress is not None:
                progress(done, total)
            yield result


async def achunked_map(run_chunk: Callable[[list[X]], Awaitable[Sequence[R]]],
                       items: Iterable[X] | AsyncIterable[X], size: int, *,
                       progress: Progress | None = None, total: int | None = None
                       ) -> AsyncIterator[R]:
    """Effectful, async: ``chunked_map`` with an awaited ``run_chunk``."""
    done = 0
    chunk: list[X] = []
    source = _aiter(items)
    while True:
        item = await anext(source, _END)
        if item is not _END:
            chunk.append(item)  # type: ignore[arg-type]  # not _END: an item
        if chunk and (len(chunk) == size or item is _END):
            for result in _one_per_item(chunk, await run_chunk(chunk)):
                done += 1
                if progress is not None:
                    progress(done, total)
                yield result
            chunk = []
        if item is _END:
            return


def _one_per_item(chunk: list[X], results: Sequence[R]) -> Sequence[R]:
    if len(results) != len(chunk):  # pragma: no cover - a runtime that lost an item
        raise AssertionError(f"{len(chunk)} items gave {len(results)} results")
    return results


_END = object()


# --- the inputs of a fan-out and its progress bar ------------------------------------------------

def input_length(inputs: object) -> int | None:
    """How many inputs there are, when that is known without reading them (a list, not a
    generator): the progress bar's total."""
    try:
        return len(inputs)  # type: ignore[arg-type]
    except TypeError:
        return None


def checked_prompts(inputs: object) -> Iterator[str | Conversation]:
    """The inputs of a fan-out, read lazily; each is checked (``messages.check_input``: a prompt
    string or a list of messages) as it is read, ``ConfigurationError`` naming its index. A
    non-iterable raises at once."""
    source = check_iterable_inputs(inputs, "an iterable")

    def read(source: Iterable[object]) -> Iterator[str | Conversation]:
        for index, prompt in enumerate(source):
            yield check_input(prompt, index)

    return read(source)


def achecked_prompts(inputs: object
                     ) -> AsyncIterator[str | Conversation] | Iterator[str | Conversation]:
    """``checked_prompts`` for ``amap``, which also takes an async iterable."""
    if not isinstance(inputs, AsyncIterable):
        return checked_prompts(inputs)

    async def read(source: AsyncIterable[object]) -> AsyncIterator[str | Conversation]:
        index = 0
        async for prompt in source:
            yield check_input(prompt, index)
            index += 1

    return read(inputs)


def with_progress(start: Callable[[Progress | None], Iterator[R]], progress: object,
                  description: str) -> Generator[R, None, None]:
    """The iterator ``start(update)`` makes, with the progress display (``progress``: ``True``,
    a callable or ``None``) opened on the first ``next`` and closed when the iteration ends or
    is stopped."""
    update, close = progress_callback(progress, description)
    results = start(update)
    try:
        yield from results
    finally:
        close_results = getattr(results, "close", None)
        if close_results is not None:
            close_results()
        close()


async def awith_progress(start: Callable[[Progress | None], AsyncIterator[R]],
                         progress: object, description: str) -> AsyncGenerator[R, None]:
    """``with_progress`` for ``async for``."""
    update, close = progress_callback(progress, description)
    results = start(update)
    try:
        async for result in results:
            yield result
    finally:
        close_results = getattr(results, "aclose", None)
        if close_results is not None:
            await close_results()
        close()
