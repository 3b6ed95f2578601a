"""Helpers for tests/test_fanout.py: inputs that count how far they were read, a fault-server
behaviour that delays chosen prompts and counts the requests in flight, and a never-hang guard."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from attrs import define, field

from tests.faults import Connection, FaultServer, Request

T = TypeVar("T")


@define
class Reader:
    """Prompts handed out one at a time, as a generator (``items``) or an async generator
    (``aitems``), with ``read``: how many were taken so far. Neither has a length."""

    prompts: Sequence[str]
    read: int = 0

    def items(self) -> Iterator[str]:
        for prompt in self.prompts:
            self.read += 1
            yield prompt

    async def aitems(self) -> AsyncIterator[str]:
        for prompt in self.prompts:
            self.read += 1
            yield prompt


def numbered(count: int, stem: str = "item") -> Iterator[str]:
    """``item-0``, ``item-1``...: lazily, so that a huge input costs nothing until read."""
    for index in range(count):
        yield f"{stem}-{index}"


def prompt_is(prompt: str) -> Callable[[Request], bool]:
    """A fault-server matcher for the one request whose prompt is exactly ``prompt``: the JSON
    string value with its quotes, so that ``item-1`` does not also match ``item-10``."""
    needle = f'"{prompt}"'.encode()
    return lambda request: needle in request.body


@define
class Gauge:
    """A ``FaultServer`` behaviour (use it as ``default``): forwards each request upstream after
    the delay planted for its prompt (``delays``: prompt -> seconds, matched as ``prompt_is``
    does; every prompt sent must have one), counts the requests being served at once
    (``in_flight``, ``max_in_flight``) and notes the prompts in the order they were answered
    (``finished``)."""

    delays: Mapping[str, float]
    in_flight: int = 0
    max_in_flight: int = 0
    finished: list[str] = field(factory=list)
    _lock: threading.Lock = field(factory=threading.Lock)

    def serve(self, conn: Connection, request: Request, server: FaultServer) -> bool:
        (prompt,) = [prompt for prompt in self.delays if prompt_is(prompt)(request)]
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if server.stopping.wait(self.delays[prompt]):
                return False
            answer = server.forward(request)
        finally:
            with self._lock:
                self.in_flight -= 1
                self.finished.append(prompt)
        conn.send_head(answer.status, answer.headers, len(answer.body))
        conn.send(answer.body)
        return True


def within(seconds: float, work: Callable[[], T]) -> T:
    """``work()``, run in a daemon thread; fails the test if it has not returned after
    ``seconds`` (a never-hang bound, not a timing measurement)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s: it hangs"
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]
