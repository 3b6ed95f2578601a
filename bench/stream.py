"""Benchmark (not a test): a streamed answer, time to first delta and client CPU per event.

    .venv/bin/python bench/stream.py            # the full run (about a minute and a half)
    .venv/bin/python bench/stream.py --quick    # a smoke run
    .venv/bin/python bench/stream.py --profile  # also: where llmbackend's CPU goes (cProfile)

A loopback SSE server (this file, run as ``stream.py --serve PORT_FILE``: another process, an
asyncio protocol on 127.0.0.1) answers ``POST /{scenario}/v1/responses`` with an OpenAI
Responses event stream shaped like the recorded real ones (tests/data/streams/openai): created,
in_progress, output_item.added, content_part.added, N ``response.output_text.delta`` events
(``obfuscation`` and all), output_text.done, content_part.done, output_item.done and
response.completed with the whole response object and its usage; chunked, one chunk per event.

Scenarios (the server's path picks one):

- ``short``: a short answer (20 deltas) sent at once: time to the first delta and to the end;
- ``long``: a long answer (2,000 deltas) sent at once: the client process's CPU time
  (``time.process_time()``; the server is another process) divided by the events read;
- ``late``: the short answer's first delta 50 ms after the opening events, as a model's
  latency would put it: time to the first delta when the client waits for it.

Rows, taking turns call by call (their order shuffled each time), each on one pooled client
warmed up with untimed calls first: llmbackend ``client.stream(prompt)`` (the deltas, then
``.generation``), llmbackend ``client.astream`` (one event loop for every async row), the
official ``openai`` SDK's ``client.responses.stream(model=..., input=...)`` (the
``response.output_text.delta`` events, then ``get_final_response()``), and the floor: a raw
httpx2 ``Client.stream("POST", ...)`` read with ``httpx2.EventSource`` and ``json.loads`` of
each event's data (an ``AsyncClient`` twin beside ``astream``). Every row is checked once per
scenario first: its deltas join to the expected text, its final answer is that text.

Machines here are noisy, so each figure is a median over rounds (of the per-round median for
times), and the verdicts are ratios measured in the same run: first delta within 1.2x the raw
read's, CPU per event below the SDK's.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

MODEL = "gpt-4.1"
PROMPT = "Tell me about the sea."
API_KEY = "sk-bench-0000000000000000"
SHORT_DELTAS = 20
LONG_DELTAS = 2000
LATE_S = 0.050
EVENTS_AROUND = 9  # events in a stream besides its deltas
RESPONSE_ID = "resp_68c2e8c147ac819491bcd667055eadbc02e845978fbbb59200000000000000000000"
ITEM_ID = "msg_68c2e8c26114819489dae5b59fceb7bf02e845978fbbb59200000000000000000000"

# --- the answer and its event stream ------------------------------------------------------------

ANSWER = ("The sea keeps its own time, folding light into salt and salt into the long patient "
          "breath of the tide; gulls argue over the harbour while the swell, unhurried, "
          "carries news from storms a thousand miles away.")
WORDS = ANSWER.split()


def deltas(count: int) -> list[str]:
    """``count`` token-sized deltas of an answer (a word, or its space and a word, mostly)."""
    pieces: list[str] = []
    for index in range(count):
        word = WORDS[index % len(WORDS)]
        if index % 7 == 3 and len(word) > 4:  # now and then a word in two tokens
            pieces.append(word[:3] if index % 2 else " " + word[:3])
        else:
            pieces.append(word if index == 0 else " " + word)
    return pieces


def response_object(text: str, *, done: bool) -> dict[str, Any]:
    """The Responses object as the recorded streams carry it (opening, or completed)."""
    return {
        "id": RESPONSE_ID, "object": "response", "created_at": 1777431497,
        "status": "completed" if done else "in_progress", "background": False,
        "completed_at": 1777431499 if done else None,
        "error": None, "frequency_penalty": 0.0, "incomplete_details": None,
        "instructions": None, "max_output_tokens": None, "max_tool_calls": None,
        "model": "gpt-4.1-2025-04-14",
        "output": [{"id": ITEM_ID, "type": "message", "status": "completed",
                    "content": [{"type": "output_text", "annotations": [], "logprobs": [],
                                 "text": text}], "role": "assistant"}] if done else [],
        "parallel_tool_calls": True, "presence_penalty": 0.0, "previous_response_id": None,
        "prompt_cache_key": None, "prompt_cache_retention": "in_memory",
        "reasoning": {"effort": None, "summary": None}, "safety_identifier": None,
        "service_tier": "default" if done else "auto", "store": True, "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"}, "tool_choice": "auto",
        "tools": [], "top_logprobs": 0, "top_p": 1.0, "truncation": "disabled",
        "usage": {"input_tokens": 21, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": text.count(" ") + 1,
                  "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": 22 + text.count(" ")} if done else None,
        "user": None, "metadata": {},
    }


def chunk(payload: dict[str, Any]) -> bytes:
    """One SSE event (``event:`` and compact ``data:``) in its own HTTP chunk."""
    event = (f"event: {payload['type']}\ndata: "
             f"{json.dumps(payload, separators=(',', ':'))}\n\n").encode()
    return b"%x\r\n%s\r\n" % (len(event), event)


def stream_parts(pieces: list[str]) -> tuple[bytes, bytes]:
    """The response head and events before the first delta; then the deltas and the rest."""
    text = "".join(pieces)
    where: dict[str, Any] = {"content_index": 0, "item_id": ITEM_ID, "output_index": 0}
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
    opening = response_object(text, done=False)
    before: list[dict[str, Any]] = [
        {"type": "response.created", "response": opening},
        {"type": "response.in_progress", "response": opening},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {"id": ITEM_ID, "type": "message", "status": "in_progress", "content": [],
                  "role": "assistant"}},
        {"type": "response.content_part.added", **where, "part": {**part, "text": ""}},
    ]
    after: list[dict[str, Any]] = [
        *({"type": "response.output_text.delta", **where, "delta": piece, "logprobs": [],
           "obfuscation": "fyy9Vfz7II"[:max(1, 10 - len(piece))]} for piece in pieces),
        {"type": "response.output_text.done", **where, "logprobs": [], "text": text},
        {"type": "response.content_part.done", **where, "part": part},
        {"type": "response.output_item.done", "output_index": 0,
         "item": {"id": ITEM_ID, "type": "message", "status": "completed", "content": [part],
                  "role": "assistant"}},
        {"type": "response.completed", "response": response_object(text, done=True)},
    ]
    numbered = [{**payload, "sequence_number": number}
                for number, payload in enumerate([*before, *after])]
    head = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"transfer-encoding: chunked\r\ncache-control: no-cache\r\n"
            b"x-request-id: req_bench\r\n\r\n")
    return (head + b"".join(chunk(p) for p in numbered[:len(before)]),
            b"".join(chunk(p) for p in numbered[len(before):]) + b"0\r\n\r\n")


SCENARIOS = {"short": (deltas(SHORT_DELTAS), 0.0), "long": (deltas(LONG_DELTAS), 0.0),
             "late": (deltas(SHORT_DELTAS), LATE_S)}

# --- the server ----------------------------------------------------------------------------------


class Streamer(asyncio.Protocol):
    """Answers each request on a keep-alive connection with its scenario's stream."""

    def __init__(self, answers: dict[bytes, tuple[bytes, bytes, float]]) -> None:
        self.buffer = b""
        self.answers = answers

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buffer[:end].split(b"\r\n")
            length = 0
            for line in lines[1:]:
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            path = lines[0].split(b" ")[1]
            scenario = path.strip(b"/").split(b"/", 1)[0]
            if scenario not in self.answers:
                self.transport.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                continue
            first, rest, delay = self.answers[scenario]
            if delay:
                self.transport.write(first)
                asyncio.get_running_loop().call_later(delay, self.transport.write, rest)
            else:
                self.transport.write(first + rest)


async def serve(port_file: Path) -> None:
    answers = {name.encode(): (*stream_parts(pieces), delay)
               for name, (pieces, delay) in SCENARIOS.items()}
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Streamer(answers), "127.0.0.1", 0, backlog=128)
    port_file.write_text(str(server.sockets[0].getsockname()[1]))
    async with server:
        await server.serve_forever()


def start_server() -> tuple[subprocess.Popen[bytes], int]:
    port_file = Path(tempfile.mkdtemp()) / "port"
    process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve",
                                str(port_file)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text():
            return process, int(port_file.read_text())
        time.sleep(0.02)
    process.kill()
    raise SystemExit("the benchmark server did not start")


# --- the rows ------------------------------------------------------------------------------------

#: One streamed call: ``read(scenario)`` returns (seconds to the first delta, seconds to the
#: end, the joined deltas, the final answer's text).
Read = Callable[[str], tuple[float, float, str, str]]

RAW = "raw httpx2 stream + EventSource + json.loads (floor)"
RAW_ASYNC = "raw httpx2 AsyncClient stream + EventSource (async floor)"
OURS = "llmbackend client.stream"
OURS_ASYNC = "llmbackend client.astream"
SDK = "openai SDK responses.stream"


class Rows:
    def __init__(self, port: int) -> None:
        import httpx2
        import openai

        import llmbackend

        self.httpx2 = httpx2
        self.origin = f"http://127.0.0.1:{port}"
        self.body = json.dumps({"model": MODEL, "input": PROMPT, "stream": True}).encode()
        self.headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json",
                        "Accept": "text/event-stream"}
        self.http = httpx2.Client()
        self.ahttp = httpx2.AsyncClient()
        self.ours = {name: llmbackend.client("openai", MODEL, api_key=API_KEY,
                                             base_url=f"{self.origin}/{name}/v1")
                     for name in SCENARIOS}
        self.sdk = {name: openai.OpenAI(api_key=API_KEY, base_url=f"{self.origin}/{name}/v1",
                                        max_retries=0)
                    for name in SCENARIOS}
        # One event loop for every async row: async pools belong to the loop they opened in.
        self.loop = asyncio.new_event_loop()

    def rows(self) -> dict[str, Read]:
        return {RAW: self.raw, OURS: self.stream, SDK: self.openai_sdk,
                RAW_ASYNC: self.raw_async, OURS_ASYNC: self.astream}

    def raw(self, scenario: str) -> tuple[float, float, str, str]:
        started = time.perf_counter()
        first = 0.0
        pieces: list[str] = []
        final = ""
        with self.http.stream("POST", f"{self.origin}/{scenario}/v1/responses",
                              content=self.body, headers=self.headers) as reply:
            for event in self.httpx2.EventSource(reply):
                data = json.loads(event.data)
                kind = data["type"]
                if kind == "response.output_text.delta":
                    if not pieces:
                        first = time.perf_counter() - started
                    pieces.append(data["delta"])
                elif kind == "response.completed":
                    final = data["response"]["output"][0]["content"][0]["text"]
        return first, time.perf_counter() - started, "".join(pieces), final

    def stream(self, scenario: str) -> tuple[float, float, str, str]:
        started = time.perf_counter()
        first = 0.0
        pieces: list[str] = []
        with self.ours[scenario].stream(PROMPT) as stream:
            for delta in stream:
                if not pieces:
                    first = time.perf_counter() - started
                pieces.append(delta)
            final = stream.generation.text
        return first, time.perf_counter() - started, "".join(pieces), final

    def openai_sdk(self, scenario: str) -> tuple[float, float, str, str]:
        started = time.perf_counter()
        first = 0.0
        pieces: list[str] = []
        with self.sdk[scenario].responses.stream(model=MODEL, input=PROMPT) as stream:
            for event in stream:
                if event.type == "response.output_text.delta":
                    if not pieces:
                        first = time.perf_counter() - started
                    pieces.append(event.delta)
            final = stream.get_final_response().output_text
        return first, time.perf_counter() - started, "".join(pieces), final

    def raw_async(self, scenario: str) -> tuple[float, float, str, str]:
        async def read() -> tuple[float, float, str, str]:
            started = time.perf_counter()
            first = 0.0
            pieces: list[str] = []
            final = ""
            async with self.ahttp.stream("POST", f"{self.origin}/{scenario}/v1/responses",
                                         content=self.body, headers=self.headers) as reply:
                async for event in self.httpx2.EventSource(reply):
                    data = json.loads(event.data)
                    kind = data["type"]
                    if kind == "response.output_text.delta":
                        if not pieces:
                            first = time.perf_counter() - started
                        pieces.append(data["delta"])
                    elif kind == "response.completed":
                        final = data["response"]["output"][0]["content"][0]["text"]
            return first, time.perf_counter() - started, "".join(pieces), final

        return self.loop.run_until_complete(read())

    def astream(self, scenario: str) -> tuple[float, float, str, str]:
        async def read() -> tuple[float, float, str, str]:
            started = time.perf_counter()
            first = 0.0
            pieces: list[str] = []
            async with self.ours[scenario].astream(PROMPT) as stream:
                async for delta in stream:
                    if not pieces:
                        first = time.perf_counter() - started
                    pieces.append(delta)
                final = (await stream.result()).unwrap().text
            return first, time.perf_counter() - started, "".join(pieces), final

        return self.loop.run_until_complete(read())


def check(rows: dict[str, Read]) -> None:
    """Every row reads every scenario right (its deltas and final text), before any timing."""
    for scenario, (pieces, _) in SCENARIOS.items():
        expected = "".join(pieces)
        for name, read in rows.items():
            _, _, joined, final = read(scenario)
            if joined != expected or final != expected:
                raise SystemExit(f"{name} read the {scenario!r} stream wrong: "
                                 f"{joined[:60]!r}... / {final[:60]!r}...")


# --- measuring -----------------------------------------------------------------------------------


def timed(rows: dict[str, Read], scenario: str, rounds: int, calls: int
          ) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Per row: the median over rounds of the round's median first delta and whole stream (ms),
    and of the round's client CPU per event (us). The rows take turns call by call (in a new
    order each time), so that a burst of load on the machine falls on all of them alike."""
    events = len(SCENARIOS[scenario][0]) + EVENTS_AROUND
    first: dict[str, list[float]] = {name: [] for name in rows}
    whole: dict[str, list[float]] = {name: [] for name in rows}
    cpu: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(rounds):
        gc.collect()
        firsts: dict[str, list[float]] = {name: [] for name in rows}
        wholes: dict[str, list[float]] = {name: [] for name in rows}
        cpus = dict.fromkeys(rows, 0.0)
        for _ in range(calls):
            for name in random.sample(list(rows), len(rows)):
                started_cpu = time.process_time()
                to_first, to_end, _, _ = rows[name](scenario)
                cpus[name] += time.process_time() - started_cpu
                firsts[name].append(to_first)
                wholes[name].append(to_end)
        for name in rows:
            cpu[name].append(cpus[name] / (calls * events) * 1e6)
            first[name].append(statistics.median(firsts[name]) * 1000)
            whole[name].append(statistics.median(wholes[name]) * 1000)
    return ({n: statistics.median(v) for n, v in first.items()},
            {n: statistics.median(v) for n, v in whole.items()},
            {n: statistics.median(v) for n, v in cpu.items()})


def floor_of(name: str) -> str:
    return RAW_ASYNC if "async" in name.lower() or "astream" in name else RAW


def table(title: str, columns: list[tuple[str, dict[str, float], str]]) -> None:
    print(f"\n## {title}\n")
    print("| row | " + " | ".join(f"{head} | vs raw" for head, _, _ in columns) + " |")
    print("|---|" + "---:|---:|" * len(columns))
    for name in columns[0][1]:
        cells = []
        for _, values, fmt in columns:
            cells.append(f"{values[name]:{fmt}} | {values[name] / values[floor_of(name)]:.2f}x")
        print(f"| {name} | " + " | ".join(cells) + " |")


def profiled(title: str, unit: str, per: int, run: Callable[[], object]) -> None:
    """cProfile ``run``: the 25 functions with the most own time, in us per ``unit``."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    print(f"\n## cProfile: {title}, by own time\n")
    print(f"| function | calls | own us/{unit} | cumulative us/{unit} |")
    print("|---|---:|---:|---:|")
    entries = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)
    for (file, line, function), (_, ncalls, own, cumulative, _) in entries[:25]:
        where = file.split("site-packages/")[-1].split("/main/")[-1]
        print(f"| {where}:{line} {function} | {ncalls} | {own / per * 1e6:.2f} | "
              f"{cumulative / per * 1e6:.2f} |")


def profile(rows: Rows, calls: int) -> None:
    """Where llmbackend's client CPU goes: per call of a short stream, and per event of a long
    one (cProfile's own cost inflates every figure: compare them with each other)."""
    shorts = calls * 50
    profiled(f"llmbackend client.stream, short stream x {shorts} (request to final answer)",
             "call", shorts, lambda: [rows.stream("short") for _ in range(shorts)])
    events = calls * (LONG_DELTAS + EVENTS_AROUND)
    profiled(f"llmbackend client.stream, long stream x {calls} ({events} events)", "event",
             events, lambda: [rows.stream("long") for _ in range(calls)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke run")
    parser.add_argument("--profile", action="store_true",
                        help="also profile llmbackend's path (short and long streams)")
    parser.add_argument("--serve", metavar="PORT_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(Path(args.serve)))
        return
    rounds, short_calls, long_calls, late_calls = (3, 10, 1, 3) if args.quick else (15, 40, 2, 6)

    process, port = start_server()
    try:
        rows = Rows(port)
        readers = rows.rows()
        check(readers)
        for read in readers.values():  # warm up pools, caches and lazy imports
            for scenario in ("short", "short", "long"):
                read(scenario)
        short_first, short_whole, short_cpu = timed(readers, "short", rounds, short_calls)
        _, long_whole, long_cpu = timed(readers, "long", rounds, long_calls)
        late_first, _, _ = timed(readers, "late", rounds, late_calls)
        print(f"\nLoopback SSE server, OpenAI Responses stream; {rounds} rounds, rows take turns"
              f" call by call; short: {SHORT_DELTAS} deltas x {short_calls} calls a round, long: "
              f"{LONG_DELTAS} deltas x {long_calls}, late: first delta after "
              f"{LATE_S * 1000:.0f} ms x {late_calls}. Ratios: to the raw httpx2 read "
              "(async rows: to the async raw read).")
        table(f"Short answer ({SHORT_DELTAS} deltas, sent at once)",
              [("first delta ms", short_first, ".3f"), ("whole stream ms", short_whole, ".3f"),
               ("CPU us/event", short_cpu, ".1f")])
        table(f"Long answer ({LONG_DELTAS} deltas, sent at once)",
              [("whole stream ms", long_whole, ".1f"), ("CPU us/event", long_cpu, ".1f")])
        table(f"Late first delta (after {LATE_S * 1000:.0f} ms)",
              [("first delta ms", late_first, ".2f")])

        first_ratio = short_first[OURS] / short_first[RAW]
        cpu_ratio = long_cpu[OURS] / long_cpu[SDK]
        print("\n## Goals\n")
        print(f"- first delta within 1.2x of the raw read: {first_ratio:.2f}x "
              f"({short_first[OURS]:.3f} ms vs {short_first[RAW]:.3f} ms): "
              f"{'PASS' if first_ratio <= 1.2 else 'MISS'}")
        print(f"- CPU per event below the SDK's: {long_cpu[OURS]:.1f} us vs "
              f"{long_cpu[SDK]:.1f} us ({cpu_ratio:.2f}x): "
              f"{'PASS' if cpu_ratio < 1.0 else 'MISS'}")
        if args.profile:
            profile(rows, 2 if args.quick else 10)
    finally:
        process.kill()


if __name__ == "__main__":
    main()
