"""Benchmark (not a test): build and parse a 100,000-item OpenAI batch, against a plain
hand-written ``json.dumps`` / ``json.loads`` loop doing the same job.

    .venv/bin/python bench/batch.py            # 100,000 items, 3 rounds
    .venv/bin/python bench/batch.py --quick    # 10,000 items, 1 round

Build: the prompts become JSONL input files, split at OpenAI's limits (50,000 requests or 200 MB
per file): llmbackend's encoder and splitter writing spooled files, exactly as ``submit_batch``
does before it uploads; the reference writes ``json.dumps`` of each line dict into a temporary
file (and does not split or check anything).
Parse: an output file in shuffled order becomes the answers in input order: llmbackend parses
every line as a full Responses object (usage, refusals, truncation), matches it by custom id and
accounts for every input; the reference ``json.loads`` each line and picks the first text out.

Time is the median of the rounds (rows take turns); peak memory is measured in a separate pass
with ``tracemalloc`` (Python allocations), since tracing slows everything down. Building writes
spooled files (up to 8 MB each in memory, then disk); parsing reads the downloaded file line by
line.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llmbackend.batching import BatchCounts, BatchStatus, default_custom_ids, read_results
from llmbackend.jobs import keep_parsed, write_parts
from llmbackend.providers import openai_batch as wire
from llmbackend.providers.openai_batch import OpenAIBatch
from llmbackend.types import GenerationConfig, GenerationRequest

MODEL = "gpt-4o-mini"
CONFIG = GenerationConfig(temperature=0.7, max_tokens=100)


def prompts(count: int) -> list[str]:
    return [f"Write a one-line product description for item #{i}: a blue ceramic mug"
            for i in range(count)]


# --- build ----------------------------------------------------------------------------------------


def build_llmbackend(texts: list[str]) -> int:
    request = GenerationRequest(model=MODEL, input="", config=CONFIG)
    encoder = wire.build_line_encoder(request).unwrap()
    ids = default_custom_ids(len(texts))
    files, sizes, _ = write_parts(encoder.lines(ids, texts), wire.MAX_REQUESTS,
                                  wire.MAX_FILE_BYTES)
    for sink in files:
        sink.close()
    return sum(sizes)


def build_reference(texts: list[str]) -> int:
    size = 0
    with tempfile.TemporaryFile() as sink:
        for i, text in enumerate(texts):
            line = json.dumps({"custom_id": f"request-{i}", "method": "POST",
                               "url": "/v1/responses",
                               "body": {"model": MODEL, "input": text, "temperature": 0.7,
                                        "max_output_tokens": 100}}) + "\n"
            size += sink.write(line.encode())
    return size


# --- parse ----------------------------------------------------------------------------------------


def output_file(count: int) -> bytes:
    """An output file as OpenAI writes it (json.dumps default separators), shuffled."""
    lines = []
    for i in range(count):
        text = f"Sturdy blue ceramic mug number {i}, glazed and dishwasher safe."
        body = {
            "id": f"resp_{i:024x}", "object": "response", "created_at": 1762300105,
            "status": "completed", "error": None, "incomplete_details": None,
            "instructions": None, "max_output_tokens": 100, "model": "gpt-4o-mini-2024-07-18",
            "output": [{"id": f"msg_{i:024x}", "type": "message", "status": "completed",
                        "content": [{"type": "output_text", "annotations": [], "logprobs": [],
                                     "text": text}], "role": "assistant"}],
            "parallel_tool_calls": True, "temperature": 0.7, "text": {"format": {"type": "text"}},
            "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled",
            "usage": {"input_tokens": 24, "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": 14, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": 38},
            "metadata": {},
        }
        lines.append(json.dumps({"id": f"batch_req_{i:024x}", "custom_id": f"request-{i}",
                                 "response": {"status_code": 200, "request_id": f"{i:032x}",
                                              "body": body}, "error": None}) + "\n")
    random.Random(7).shuffle(lines)
    return "".join(lines).encode()


def parse_llmbackend(path: Path, count: int) -> list[Any]:
    request = GenerationRequest(model=MODEL, input="")
    ended = OpenAIBatch(id="b", status=BatchStatus("completed"), counts=BatchCounts())
    with path.open("rb") as lines:
        report = read_results(
            default_custom_ids(count), (wire.parse_result_line(request, line) for line in lines),
            provider="openai", validate=None, keep=keep_parsed,
            missing=lambda i, cid, unread: wire.missing_result_error(ended, cid, i + 1, unread))
    return [outcome.unwrap() for outcome in report.outcomes]


def parse_reference(path: Path, count: int) -> list[Any]:
    answers: dict[str, str] = {}
    with path.open("rb") as lines:
        for line in lines:
            item = json.loads(line)
            answers[item["custom_id"]] = item["response"]["body"]["output"][0]["content"][0][
                "text"]
    return [answers[f"request-{i}"] for i in range(count)]


# --- measuring ------------------------------------------------------------------------------------


def timed(rows: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(rounds):
        for name, run in rows.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def peak_mib(run: Callable[[], object]) -> float:
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def table(title: str, rows: dict[str, Callable[[], object]], rounds: int, count: int) -> None:
    seconds = timed(rows, rounds)
    peaks = {name: peak_mib(run) for name, run in rows.items()}
    reference = seconds["reference (json loop)"]
    print(f"\n{title} ({count:,} items, median of {rounds})")
    print(f"{'':26} {'time s':>8} {'items/s':>10} {'x ref':>7} {'peak MiB':>9}")
    for name in rows:
        print(f"{name:26} {seconds[name]:8.2f} {count / seconds[name]:10,.0f} "
              f"{seconds[name] / reference:7.2f} {peaks[name]:9.1f}")


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 items, one round")
    parser.add_argument("--items", type=int, default=None)
    args = parser.parse_args(list(argv) if argv is not None else None)
    count = args.items or (10_000 if args.quick else 100_000)
    rounds = 1 if args.quick else 3

    texts = prompts(count)
    # The two builds write the same lines (key order and separators aside).
    assert build_llmbackend(texts[:10]) > 0
    table("Build the input JSONL", {
        "llmbackend": lambda: build_llmbackend(texts),
        "reference (json loop)": lambda: build_reference(texts),
    }, rounds, count)

    with tempfile.TemporaryDirectory() as folder:
        # The file as the transport leaves it after a download (peak memory then counts the
        # parsing only: the answers, the bookkeeping and one line at a time).
        path = Path(folder) / "output.jsonl"
        path.write_bytes(output_file(count))
        assert parse_llmbackend(path, count) == parse_reference(path, count)
        print(f"\n(output file: {path.stat().st_size / 2**20:.1f} MiB)")
        table("Parse the output JSONL into answers in input order", {
            "llmbackend": lambda: parse_llmbackend(path, count),
            "reference (json loop)": lambda: parse_reference(path, count),
        }, rounds, count)


if __name__ == "__main__":
    main()
