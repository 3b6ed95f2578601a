"""Benchmark (not a test): fan-out of many prompts, against the ideal and the raw alternatives.

    .venv/bin/python bench/fanout.py                     # the full run (about eight minutes)
    .venv/bin/python bench/fanout.py --quick             # a smoke run (about a minute)
    .venv/bin/python bench/fanout.py --only all-at-once  # section 3 alone (four and a half)

``--only wall`` and ``--only memory`` run section 1 or 2 alone (together about three minutes).

A loopback server (bench/server.py, another process) answers every ``POST`` after a fixed
latency L. Where the machine has two CPUs or more, the client process is pinned to one and the
server to another (``os.sched_setaffinity``), as in issue 17's setup. N prompts sent c at a time
take at best ``L x ceil(N / c)``. Each wall time is the median of the rounds, in which the rows
take turns (in a shuffled order in section 3). Every row checks its answers, so that a broken
row cannot look fast.

1. Wall time, 1,000 Anthropic prompts at L = 100 ms, for llmbackend's ``Client.map``
   (threads), ``Client.amap`` (asyncio) and the immediate batch, against two raw alternatives
   written the usual way: a bare pooled httpx2 client on a ``ThreadPoolExecutor`` and the
   official ``anthropic`` SDK's ``AsyncAnthropic`` under an ``asyncio.Semaphore`` with
   ``gather``, next to the ideal and the ratio (1.00 is perfect). Peak memory is what
   ``tracemalloc`` saw allocated at the peak of one more, traced, run (results included).
2. Bounded memory: ``Client.map`` over a generator of N prompts whose results are consumed as
   they come, against the immediate batch (which keeps every result by design), at N = 1,000
   and 10,000: the fan-out's peak should not grow with N.
3. All at once (issue 17): N = 200 and 1,000 OpenAI Responses prompts (and 5,000 for
   llmbackend's async rows and raw aiohttp, in the full run) sent at once, L = 100 ms:
   llmbackend ``aget_response`` + ``asyncio.gather``, ``Client.amap(concurrency=N)``, the async
   immediate batch (``asubmit_batch`` then ``aresults``) and ``Client.map(concurrency=N)``
   (threads); raw aiohttp (``TCPConnector(limit=0)``) + ``gather``; raw httpx2 ``AsyncClient``
   + ``gather`` and httpx2 ``Client`` on N threads (pools sized to N); the ``openai`` SDK's
   ``AsyncOpenAI`` with its default client and with ``DefaultAioHttpClient()``. Every client is
   built once per N, on one event loop for the async rows, and warmed by one untimed run of N.
   Columns: wall s (median), its ratio to raw aiohttp's, client CPU per request
   (``time.process_time()`` over the run / N, median; the server is another process), and
   memory per in-flight request: the ``tracemalloc`` peak of one more, traced, run beyond what
   was allocated before it, / N, in KiB (Python allocations only: the kernel's socket buffers
   and memory that C code takes outside Python's allocators are not in it). A row llmbackend
   refuses with ``ConfigurationError`` (a concurrency ceiling, which it no longer has) says so
   instead of a figure. The goals, as ratios in this one run: llmbackend's async rows within
   1.3x of raw aiohttp's wall time at 200 and 1,000, at most 0.6 ms of client CPU per request
   at every N, and at least 4x faster than the openai SDK's default async client at 1,000;
   ``Client.map`` (threads: a thread per request in flight) within 1.2x of raw httpx2 on N
   threads. Rounds: 5 at 200, 3 at 1,000 and 5,000; the quick run does
   one round, and at 1,000 only llmbackend's async rows, raw aiohttp and the SDK, untraced.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import llmbackend  # noqa: E402

API_KEY = "sk-ant-bench-0000000000000000"
MODEL = "claude-sonnet-4-5"
OPENAI_KEY = "sk-bench-0000000000000000"
OPENAI_MODEL = "gpt-4o-mini"
#: The text bench/server.py answers with (every row counts the answers equal to it).
EXPECTED = "Waves fold into light / salt breath of the patient deep / the moon keeps the time"
MiB = 1024 * 1024
KiB = 1024
#: The CPUs the client process and the server are pinned to (None: not pinned).
PINS: tuple[int, int] | None = None


def pin_client() -> None:
    """Pin this process (before it starts any thread: threads inherit it) to one CPU, and keep
    another for the server; raise the open-files limit for thousands of connections."""
    global PINS
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_setaffinity") else []
    if len(cpus) >= 2:
        PINS = (cpus[0], cpus[1])
        os.sched_setaffinity(0, {cpus[0]})


def start_server(latency: float, kind: str = "anthropic") -> tuple[subprocess.Popen[bytes], int]:
    port_file = Path(tempfile.mkdtemp()) / "port"
    process = subprocess.Popen([sys.executable, str(HERE / "server.py"), str(port_file),
                                str(latency), kind])
    if PINS is not None:
        os.sched_setaffinity(process.pid, {PINS[1]})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text():
            return process, int(port_file.read_text())
        time.sleep(0.02)
    process.kill()
    raise RuntimeError("the benchmark server did not start")


def prompts(count: int) -> Iterator[str]:
    return (f"prompt {i}" for i in range(count))


class Runners:
    """One callable per row: ``run(count, concurrency)`` sends ``count`` prompts and returns
    how many answers came back (each row checks its own answers)."""

    def __init__(self, base_url: str) -> None:
        import anthropic
        import httpx2

        self.base_url = base_url
        self.client = llmbackend.client("anthropic", MODEL, api_key=API_KEY, base_url=base_url)
        self.client.get_response("warm up")
        self.http = httpx2.Client(limits=httpx2.Limits(max_connections=256,
                                                       max_keepalive_connections=256))
        self.sdk = anthropic.AsyncAnthropic(api_key=API_KEY, base_url=base_url, max_retries=0)
        # One event loop for every async row: async pools belong to the loop they opened in.
        self.loop = asyncio.new_event_loop()

    def rows(self) -> dict[str, Callable[[int, int], int]]:
        return {
            "llmbackend Client.map (threads)": self.map,
            "llmbackend Client.amap (asyncio)": self.amap,
            "llmbackend immediate batch": self.batch,
            "raw httpx2 + ThreadPoolExecutor": self.raw_threads,
            "raw anthropic SDK async + gather": self.raw_sdk,
        }

    def map(self, count: int, concurrency: int) -> int:
        answered = 0
        for result in self.client.map(prompts(count), concurrency=concurrency):
            answered += result.unwrap().text.startswith("Waves")
        return answered

    def amap(self, count: int, concurrency: int) -> int:
        async def main() -> int:
            answered = 0
            async for result in self.client.amap(prompts(count), concurrency=concurrency):
                answered += result.unwrap().text.startswith("Waves")
            return answered

        return self.loop.run_until_complete(main())

    def batch(self, count: int, concurrency: int) -> int:
        batch = self.client.submit_batch(list(prompts(count)),
                                          batch_options={"concurrency": concurrency})
        return sum(text.startswith("Waves") for text in batch.results())

    def raw_threads(self, count: int, concurrency: int) -> int:
        url = self.base_url + "/v1/messages"
        headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}

        def post(prompt: str) -> str:
            reply = self.http.post(url, headers=headers, json={
                "model": MODEL, "max_tokens": 4096,
                "messages": [{"role": "user", "content": prompt}]})
            reply.raise_for_status()
            return str(json.loads(reply.content)["content"][0]["text"])

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return sum(text.startswith("Waves") for text in pool.map(post, prompts(count)))

    def raw_sdk(self, count: int, concurrency: int) -> int:
        async def main() -> int:
            limit = asyncio.Semaphore(concurrency)

            async def one(prompt: str) -> str:
                async with limit:
                    message = await self.sdk.messages.create(
                        model=MODEL, max_tokens=4096,
                        messages=[{"role": "user", "content": prompt}])
                    return str(message.content[0].text)  # type: ignore[union-attr]

            texts = await asyncio.gather(*(one(prompt) for prompt in prompts(count)))
            return sum(text.startswith("Waves") for text in texts)

        return self.loop.run_until_complete(main())

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.run_until_complete(self.sdk.close())
        self.loop.close()
        self.http.close()


def traced_peak(run: Callable[[], object]) -> float:
    """MiB allocated at the peak of ``run()``, beyond what was allocated before it."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    try:
        run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return (peak - before) / MiB


def wall_table(runners: Runners, latency: float, count: int, levels: Iterable[int],
               rounds: int) -> None:
    rows = runners.rows()
    print(f"\n### 1. {count:,} prompts, loopback latency L = {latency * 1000:.0f} ms "
          f"(wall: median of {rounds}; peak: one traced run)\n")
    print("| client | concurrency c | wall s | ideal L x ceil(N/c) s | ratio | peak MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for concurrency in levels:
        walls: dict[str, list[float]] = {name: [] for name in rows}
        for _ in range(rounds):
            for name, run in rows.items():
                started = time.perf_counter()
                answered = run(count, concurrency)
                walls[name].append(time.perf_counter() - started)
                assert answered == count, (name, answered)
        ideal = latency * math.ceil(count / concurrency)
        for name, run in rows.items():
            peak = traced_peak(lambda run=run, c=concurrency: run(count, c))  # type: ignore[misc]
            wall = statistics.median(walls[name])
            print(f"| {name} | {concurrency} | {wall:.2f} | {ideal:.2f} | {wall / ideal:.2f} "
                  f"| {peak:.1f} |")


def memory_table(runners: Runners, counts: Iterable[int], concurrency: int) -> None:
    print(f"\n### 2. Peak memory against N (latency 0, concurrency {concurrency}, "
          "tracemalloc)\n")
    print("| N prompts | Client.map, results consumed as they come, MiB "
          "| immediate batch (keeps every result), MiB |")
    print("|---:|---:|---:|")
    for count in counts:
        streamed = traced_peak(lambda n=count: runners.map(n, concurrency))  # type: ignore[misc]
        kept = traced_peak(lambda n=count: runners.batch(n, concurrency))  # type: ignore[misc]
        print(f"| {count:,} | {streamed:.2f} | {kept:.2f} |")


# --- 3. all at once ------------------------------------------------------------------------------

REFUSED = "refused (concurrency ceiling)"
#: llmbackend's async rows: the ones the wall-time and openai goals are about.
OURS_ASYNC = ("llmbackend aget_response + gather", "llmbackend Client.amap",
              "llmbackend async immediate batch")
OURS_THREADS = "llmbackend Client.map (threads)"
OURS = (*OURS_ASYNC, OURS_THREADS)
THREADS = "raw httpx2 Client on N threads"
AIOHTTP = "raw aiohttp + gather"
SDK_DEFAULT = "openai SDK AsyncOpenAI (default client)"


class RefusedError(Exception):
    """llmbackend refused the row's concurrency (its ceiling): no figure, said so instead."""


class AllAtOnce:
    """The rows of section 3 for one N, each ``run()`` sending N prompts at once and returning
    how many answers are right; every client built here, once, and closed by ``close()``."""

    def __init__(self, base_url: str, count: int, names: Iterable[str] | None = None) -> None:
        import aiohttp
        import httpx2
        import openai

        self.count = count
        self.url = base_url + "/v1/responses"
        self.headers = {"Authorization": f"Bearer {OPENAI_KEY}",
                        "Content-Type": "application/json"}
        self.notes: list[str] = []
        self.loop = asyncio.new_event_loop()  # every async client belongs to this one loop
        self.client = llmbackend.client("openai", OPENAI_MODEL, api_key=OPENAI_KEY,
                                        base_url=base_url + "/v1")
        limits = httpx2.Limits(max_connections=count, max_keepalive_connections=count,
                               keepalive_expiry=120)
        self.http = httpx2.Client(limits=limits)
        self.pool = ThreadPoolExecutor(max_workers=count)

        async def make() -> tuple[Any, Any, Any, Any]:
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                limit=0, keepalive_timeout=120))
            ahttp = httpx2.AsyncClient(limits=limits)
            # timeout=600 (the SDK's overall default) for the connect too: its default 5 s
            # connect timeout fails 1,000 prompts at once under tracemalloc.
            sdk = openai.AsyncOpenAI(api_key=OPENAI_KEY, base_url=base_url + "/v1",
                                     max_retries=0, timeout=600)
            sdk_aiohttp = None
            if hasattr(openai, "DefaultAioHttpClient"):
                sdk_aiohttp = openai.AsyncOpenAI(
                    api_key=OPENAI_KEY, base_url=base_url + "/v1", max_retries=0,
                    timeout=600, http_client=openai.DefaultAioHttpClient())
            return session, ahttp, sdk, sdk_aiohttp

        self.session, self.ahttp, self.sdk, self.sdk_aiohttp = self.loop.run_until_complete(
            make())
        rows: dict[str, Callable[[], int]] = {
            OURS_ASYNC[0]: self.gather_ours,
            OURS_ASYNC[1]: self.amap,
            OURS_ASYNC[2]: self.abatch,
            OURS[3]: self.map,
            AIOHTTP: self.raw_aiohttp,
            "raw httpx2 AsyncClient + gather": self.raw_httpx2_async,
            THREADS: self.raw_httpx2_threads,
            SDK_DEFAULT: self.sdk_default,
            "openai SDK AsyncOpenAI (DefaultAioHttpClient)": self.sdk_aio,
        }
        if self.sdk_aiohttp is None:
            del rows["openai SDK AsyncOpenAI (DefaultAioHttpClient)"]
            self.notes.append("the installed openai has no DefaultAioHttpClient: row skipped")
        wanted = set(rows if names is None else names)
        self.rows = {name: run for name, run in rows.items() if name in wanted}

    def prompts(self) -> list[str]:
        return [f"prompt {i}" for i in range(self.count)]

    def run_async(self, main: Callable[[], Awaitable[int]]) -> int:
        return self.loop.run_until_complete(main())

    def refusing(self, run: Callable[[], int]) -> int:
        try:
            return run()
        except llmbackend.ConfigurationError as error:
            if "concurrency" not in str(error):
                raise
            raise RefusedError(str(error)) from None

    # llmbackend

    def gather_ours(self) -> int:
        async def main() -> int:
            texts = await asyncio.gather(*(self.client.aget_response(prompt)
                                           for prompt in self.prompts()))
            return sum(text == EXPECTED for text in texts)

        return self.refusing(lambda: self.run_async(main))

    def amap(self) -> int:
        async def main() -> int:
            answered = 0
            async for result in self.client.amap(self.prompts(), concurrency=self.count):
                answered += result.unwrap().text == EXPECTED
            return answered

        return self.refusing(lambda: self.run_async(main))

    def abatch(self) -> int:
        async def main() -> int:
            batch = await self.client.asubmit_batch(
                self.prompts(), batch_options={"mode": "immediate", "concurrency": self.count})
            return sum(text == EXPECTED for text in await batch.aresults())

        return self.refusing(lambda: self.run_async(main))

    def map(self) -> int:
        def run() -> int:
            return sum(result.unwrap().text == EXPECTED
                       for result in self.client.map(self.prompts(), concurrency=self.count))

        return self.refusing(run)

    # the raw alternatives and the SDK

    def body(self, prompt: str) -> bytes:
        return json.dumps({"model": OPENAI_MODEL, "input": prompt}).encode()

    @staticmethod
    def text(data: bytes) -> str:
        return str(json.loads(data)["output"][0]["content"][0]["text"])

    def raw_aiohttp(self) -> int:
        async def one(prompt: str) -> str:
            async with self.session.post(self.url, data=self.body(prompt),
                                         headers=self.headers) as reply:
                reply.raise_for_status()
                return self.text(await reply.read())

        async def main() -> int:
            texts = await asyncio.gather(*(one(prompt) for prompt in self.prompts()))
            return sum(text == EXPECTED for text in texts)

        return self.run_async(main)

    def raw_httpx2_async(self) -> int:
        async def one(prompt: str) -> str:
            reply = await self.ahttp.post(self.url, content=self.body(prompt),
                                          headers=self.headers)
            reply.raise_for_status()
            return self.text(reply.content)

        async def main() -> int:
            texts = await asyncio.gather(*(one(prompt) for prompt in self.prompts()))
            return sum(text == EXPECTED for text in texts)

        return self.run_async(main)

    def raw_httpx2_threads(self) -> int:
        def one(prompt: str) -> str:
            reply = self.http.post(self.url, content=self.body(prompt), headers=self.headers)
            reply.raise_for_status()
            return self.text(reply.content)

        return sum(text == EXPECTED for text in self.pool.map(one, self.prompts()))

    def sdk_rows(self, sdk: Any) -> int:
        async def main() -> int:
            answers = await asyncio.gather(*(sdk.responses.create(model=OPENAI_MODEL,
                                                                  input=prompt)
                                             for prompt in self.prompts()))
            return sum(answer.output_text == EXPECTED for answer in answers)

        return self.run_async(main)

    def sdk_default(self) -> int:
        return self.sdk_rows(self.sdk)

    def sdk_aio(self) -> int:
        return self.sdk_rows(self.sdk_aiohttp)

    def close(self) -> None:
        async def shut() -> None:
            await self.client.aclose()
            await self.session.close()
            await self.ahttp.aclose()
            await self.sdk.close()
            if self.sdk_aiohttp is not None:
                await self.sdk_aiohttp.close()

        self.loop.run_until_complete(shut())
        self.loop.close()
        self.client.close()
        self.http.close()
        self.pool.shutdown()


#: One N's figures per row: wall s, CPU ms per request, KiB per in-flight request (NaN: not
#: traced); None where llmbackend refused the row.
Figures = dict[str, tuple[float, float, float] | None]


def all_at_once_table(base_url: str, count: int, rounds: int,
                      names: Iterable[str] | None = None, traced: bool = True) -> Figures:
    rows = AllAtOnce(base_url, count, names)
    refused: dict[str, str] = {}
    walls: dict[str, list[float]] = {name: [] for name in rows.rows}
    cpus: dict[str, list[float]] = {name: [] for name in rows.rows}
    memory: dict[str, float] = {}  # absent: not traced (the quick run at 1,000)
    try:
        for name, run in rows.rows.items():  # warm up (and check) every row
            try:
                answered = run()
            except RefusedError as error:
                refused[name] = str(error)
                continue
            assert answered == count, (name, answered)
        live = [name for name in rows.rows if name not in refused]
        for _ in range(rounds):
            for name in random.sample(live, len(live)):
                gc.collect()
                started, started_cpu = time.perf_counter(), time.process_time()
                answered = rows.rows[name]()
                walls[name].append(time.perf_counter() - started)
                cpus[name].append((time.process_time() - started_cpu) / count * 1000)
                assert answered == count, (name, answered)
        for name in random.sample(live, len(live)) if traced else ():
            memory[name] = traced_peak(rows.rows[name]) * MiB / KiB / count
    finally:
        rows.close()
    figures: Figures = dict.fromkeys(refused)
    for name in live:
        figures[name] = (statistics.median(walls[name]), statistics.median(cpus[name]),
                         memory.get(name, math.nan))
    floor = figures.get(AIOHTTP)
    print(f"\n### 3. All at once: N = {count:,} prompts in flight, L = 100 ms "
          f"(median of {rounds}; memory: "
          f"{'one traced run' if traced else 'not traced in a quick run'})\n")
    print("| client | wall s | / raw aiohttp | client CPU ms/request "
          "| KiB per in-flight request |")
    print("|---|---:|---:|---:|---:|")
    for name in rows.rows:
        figure = figures[name]
        if figure is None:
            print(f"| {name} | {REFUSED} | | | |")
            continue
        wall, cpu, kib = figure
        ratio = f"{wall / floor[0]:.2f}" if floor is not None else "-"
        memory_text = "-" if math.isnan(kib) else f"{kib:.1f}"
        print(f"| {name} | {wall:.3f} | {ratio} | {cpu:.3f} | {memory_text} |")
    for note in rows.notes:
        print(f"\nNote: {note}.")
    return figures


def verdicts(tables: dict[int, Figures]) -> None:
    print("\n### Goals (issue 17), as ratios in this run\n")

    def say(ok: bool | None, what: str) -> None:
        print(f"- {'n/a ' if ok is None else 'PASS' if ok else 'MISS'} {what}")

    for count in (200, 1000):
        if count not in tables:
            continue
        floor = tables[count].get(AIOHTTP)
        for name in OURS_ASYNC:
            figure = tables[count].get(name)
            if figure is None or floor is None:
                say(None, f"N = {count:,}: {name} within 1.3x of raw aiohttp ({REFUSED})")
                continue
            ratio = figure[0] / floor[0]
            say(ratio <= 1.3, f"N = {count:,}: {name} within 1.3x of raw aiohttp's wall "
                f"time: {ratio:.2f}x")
    for count, figures in sorted(tables.items()):
        threads, ours = figures.get(THREADS), figures.get(OURS_THREADS)
        if threads is not None and ours is not None:
            ratio = ours[0] / threads[0]
            say(ratio <= 1.2, f"N = {count:,}: {OURS_THREADS} within 1.2x of raw httpx2 on N "
                f"threads' wall time: {ratio:.2f}x")
        for name in OURS_ASYNC:
            if name not in figures:
                continue
            figure = figures[name]
            if figure is None:
                say(None, f"N = {count:,}: {name} CPU per request <= 0.6 ms ({REFUSED})")
                continue
            say(figure[1] <= 0.6, f"N = {count:,}: {name} client CPU per request <= 0.6 ms: "
                f"{figure[1]:.3f} ms")
    if 1000 in tables:
        sdk = tables[1000].get(SDK_DEFAULT)
        for name in OURS_ASYNC:
            figure = tables[1000].get(name)
            if figure is None or sdk is None:
                say(None, f"N = 1,000: {name} >= 4x faster than the openai SDK's default "
                    f"async client ({REFUSED})")
                continue
            speedup = sdk[0] / figure[0]
            say(speedup >= 4, f"N = 1,000: {name} >= 4x faster than the openai SDK's default "
                f"async client: {speedup:.2f}x")


def all_at_once(quick: bool) -> None:
    server, port = start_server(0.1, "openai")
    base_url = f"http://127.0.0.1:{port}"
    tables: dict[int, Figures] = {}
    try:
        rounds = 1 if quick else 5
        tables[200] = all_at_once_table(base_url, 200, rounds)
        if quick:  # the slow raw rows (httpx2 at 1,000 at once) and tracemalloc: full run only
            tables[1000] = all_at_once_table(base_url, 1000, 1, (
                *OURS_ASYNC, AIOHTTP, SDK_DEFAULT, "openai SDK AsyncOpenAI (DefaultAioHttpClient)"),
                traced=False)
        else:
            tables[1000] = all_at_once_table(base_url, 1000, 3)
            tables[5000] = all_at_once_table(base_url, 5000, 3, (*OURS_ASYNC, AIOHTTP))
    finally:
        server.kill()
    verdicts(tables)


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer prompts, one round")
    parser.add_argument("--only", choices=("wall", "memory", "all-at-once"),
                        help="run one section")
    args = parser.parse_args(list(argv) if argv is not None else None)
    pin_client()
    print(f"client pinned to CPU {PINS[0]}, the server to CPU {PINS[1]}" if PINS is not None
          else "not pinned: fewer than two CPUs")
    latency = 0.1
    count, levels, rounds = ((200, (16, 64), 1) if args.quick else
                             (1000, (32, 64, 128, 256), 3))
    if args.only in (None, "wall"):
        server, port = start_server(latency)
        try:
            runners = Runners(f"http://127.0.0.1:{port}")
            wall_table(runners, latency, count, levels, rounds)
            runners.close()
        finally:
            server.kill()
    if args.only in (None, "memory"):
        server, port = start_server(0.0)
        try:
            runners = Runners(f"http://127.0.0.1:{port}")
            memory_table(runners, (300, 3000) if args.quick else (1000, 10000), 64)
            runners.close()
        finally:
            server.kill()
    if args.only in (None, "all-at-once"):
        started = time.perf_counter()
        all_at_once(args.quick)
        print(f"\n(section 3 took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
