"""Benchmark (not a test): an immediate batch's concurrency, against the ideal.

    .venv/bin/python bench/fanout.py            # the full run (about a minute)
    .venv/bin/python bench/fanout.py --quick    # a smoke run

A loopback server (bench/server.py, another process) answers every Anthropic ``POST
/v1/messages`` after a fixed latency L. ``client.submit_batch(prompts, batch_options={
"concurrency": c})`` sends N prompts; if the requests really run c at a time, the batch takes
about ``L x ceil(N / c)``. The table gives the wall time next to that ideal, and the ratio (1.00
is perfect; above it is llmbackend's own cost per request and thread scheduling). The run with
concurrency 1 is the sequential reference. Each figure is the median of the rounds.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import llmbackend  # noqa: E402

API_KEY = "sk-ant-bench-0000000000000000"


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


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer prompts, one round")
    args = parser.parse_args(list(argv) if argv is not None else None)
    latency = 0.1
    rounds = 1 if args.quick else 3
    runs = ([(16, 1), (64, 8), (64, 32)] if args.quick else
            [(20, 1), (200, 8), (200, 32), (1000, 64), (1000, 128), (1000, 256)])
    server, port = start_server(latency)
    try:
        client = llmbackend.client("anthropic", "claude-sonnet-4-5", api_key=API_KEY,
                                   base_url=f"http://127.0.0.1:{port}")
        client.get_response("warm up")
        print(f"\nImmediate batch, loopback server with latency L = {latency * 1000:.0f} ms "
              f"(median of {rounds})")
        print("| prompts N | concurrency c | wall s | ideal L x ceil(N/c) s | ratio |")
        print("|---:|---:|---:|---:|---:|")
        for count, concurrency in runs:
            prompts = [f"prompt {i}" for i in range(count)]
            walls = []
            for _ in range(rounds):
                started = time.perf_counter()
                batch = client.submit_batch(prompts, batch_options={"concurrency": concurrency})
                walls.append(time.perf_counter() - started)
                assert batch.counts.completed == count, batch.counts
            wall = statistics.median(walls)
            ideal = latency * math.ceil(count / concurrency)
            print(f"| {count} | {concurrency} | {wall:.2f} | {ideal:.2f} | {wall / ideal:.2f} |")
        client.close()
    finally:
        server.kill()


if __name__ == "__main__":
    main()
