"""Benchmark (not a test): fan-out of many prompts, against the ideal and the raw alternatives.

    .venv/bin/python bench/fanout.py            # the full run (about three minutes)
    .venv/bin/python bench/fanout.py --quick    # a smoke run

A loopback server (bench/server.py, another process) answers every Anthropic ``POST
/v1/messages`` after a fixed latency L. N prompts sent c at a time take at best
``L x ceil(N / c)``: each table gives the wall time next to that ideal and the ratio (1.00 is
perfect; above it is the client's own cost per request and the scheduling of its threads or
tasks). Each wall time is the median of the rounds, in which the rows take turns.

1. Wall time, 1,000 prompts at L = 100 ms, for llmbackend's ``Client.map`` (threads),
   ``Client.amap`` (asyncio) and the immediate batch, against two raw alternatives written the
   usual way: a bare pooled httpx2 client on a ``ThreadPoolExecutor`` and the official
   ``anthropic`` SDK's ``AsyncAnthropic`` under an ``asyncio.Semaphore`` with ``gather``.
   Peak memory is what ``tracemalloc`` saw allocated at the peak of one more, traced, run
   (Python allocations, results included).
2. Bounded memory: ``Client.map`` over a generator of N prompts whose results are consumed as
   they come, against the immediate batch (which keeps every result by design), at N = 1,000
   and 10,000: the fan-out's peak should not grow with N.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import llmbackend  # noqa: E402

API_KEY = "sk-ant-bench-0000000000000000"
MODEL = "claude-sonnet-4-5"
MiB = 1024 * 1024


def start_server(latency: float) -> tuple[subprocess.Popen[bytes], int]:
    port_file = Path(tempfile.mkdtemp()) / "port"
    process = subprocess.Popen([sys.executable, str(HERE / "server.py"), str(port_file),
                                str(latency), "anthropic"])
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
        from concurrent.futures import ThreadPoolExecutor

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


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer prompts, one round")
    args = parser.parse_args(list(argv) if argv is not None else None)
    latency = 0.1
    count, levels, rounds = ((200, (16, 64), 1) if args.quick else
                             (1000, (32, 64, 128, 256), 3))
    server, port = start_server(latency)
    try:
        runners = Runners(f"http://127.0.0.1:{port}")
        wall_table(runners, latency, count, levels, rounds)
        runners.close()
    finally:
        server.kill()
    server, port = start_server(0.0)
    try:
        runners = Runners(f"http://127.0.0.1:{port}")
        memory_table(runners, (300, 3000) if args.quick else (1000, 10000), 64)
        runners.close()
    finally:
        server.kill()


if __name__ == "__main__":
    main()
