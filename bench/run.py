"""Benchmarks (not tests): import time and per-call overhead, each against the raw alternative.

    .venv/bin/python bench/run.py            # the full run (about a minute)
    .venv/bin/python bench/run.py --quick    # a smoke run

Machines here are noisy, so every figure is a median over rounds in which the rows take turns,
and the verdicts are ratios measured in the same run, never absolute times.

1. Import: ``import llmbackend`` (and the whole public API) in fresh processes, against bare
   ``python -c pass``; then the modules a real call has loaded: no vendor SDK, no ML runtime.
2. Per call: one Responses API request to a loopback server (bench/server.py, another process)
   through llmbackend, against a bare pooled httpx2 POST + ``json.loads`` of the same request,
   the official ``openai`` SDK's ``responses.create``, and a raw ``http.client`` keep-alive POST
   as the floor.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = "gpt-4o-mini"
PROMPT = "Write a haiku about oceans."
CONFIG = {"temperature": 0.7, "max_tokens": 100}
#: Exactly the body llmbackend builds for PROMPT and CONFIG (checked at start-up).
PAYLOAD = {"model": MODEL, "input": PROMPT, "temperature": 0.7, "max_output_tokens": 100}
API_KEY = "sk-bench-0000000000000000"
VENDOR_MODULES = ("openai", "anthropic", "google.genai", "google.generativeai", "torch",
                  "transformers", "vllm", "mlx", "mlx_lm", "tensorflow", "jax")

# --- import time ---------------------------------------------------------------------------------


def _fresh_process_ms(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return (time.perf_counter() - started) * 1000


def import_table(rounds: int) -> None:
    rows = {
        "python -c pass": "pass",
        "import llmbackend": "import llmbackend",
        "from llmbackend import (whole public API)":
            "from llmbackend import get_response, generate, client, StructuredOutput, "
            "GenerationConfig, Generation, LLMError",
        "import openai (for scale)": "import openai",
    }
    samples: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(rounds):
        for name in random.sample(list(rows), len(rows)):
            samples[name].append(_fresh_process_ms(rows[name]))
    bare = statistics.median(samples["python -c pass"])
    print("\n## Import time (fresh process, median of", rounds, "runs)\n")
    print("| what | wall ms | over bare python, ms |")
    print("|---|---:|---:|")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} | {median - bare:+.1f} |")


def loaded_modules_after_a_call(port: int) -> None:
    code = (
        "import llmbackend, sys, json\n"
        f"answer = llmbackend.get_response('openai', {MODEL!r}, {PROMPT!r}, {CONFIG!r}, "
        f"api_key={API_KEY!r}, base_url='http://127.0.0.1:{port}/v1')\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    loaded = json.loads(out)
    vendors = [m for m in loaded if any(m == v or m.startswith(v + ".") for v in VENDOR_MODULES)]
    heavy = [m for m in ("httpx2", "jsonschema", "cattrs", "pydantic") if m in loaded]
    print("\nAfter one get_response call: vendor SDK / ML runtime modules loaded:",
          vendors or "none", "| lazily loaded on first use:", ", ".join(heavy) or "none")
    if vendors:
        raise SystemExit("llmbackend imported a vendor SDK or ML runtime")


# --- per-call overhead --------------------------------------------------------------------------


def start_server() -> tuple[subprocess.Popen[bytes], int]:
    port_file = Path(tempfile.mkdtemp()) / "port"
    process = subprocess.Popen([sys.executable, str(HERE / "server.py"), str(port_file)])
    for _ in range(200):
        if port_file.exists() and port_file.read_text():
            return process, int(port_file.read_text())
        time.sleep(0.02)
    process.kill()
    raise SystemExit("the benchmark server did not start")


def contenders(port: int) -> dict[str, Callable[[], str]]:
    import httpx2
    import openai

    import llmbackend

    base_url = f"http://127.0.0.1:{port}/v1"
    body = json.dumps(PAYLOAD).encode()
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}

    raw = http.client.HTTPConnection("127.0.0.1", port)

    def raw_http_client() -> str:
        raw.request("POST", "/v1/responses", body=body, headers=headers)
        data = json.loads(raw.getresponse().read())
        return data["output"][0]["content"][0]["text"]  # type: ignore[no-any-return]

    pooled = httpx2.Client()

    def bare_httpx2() -> str:
        data = json.loads(pooled.post(f"{base_url}/responses", content=body,
                                      headers=headers).content)
        return data["output"][0]["content"][0]["text"]  # type: ignore[no-any-return]

    client = llmbackend.client("openai", MODEL, api_key=API_KEY, base_url=base_url)

    def llmbackend_client() -> str:
        return client.get_response(PROMPT, CONFIG)

    def llmbackend_top_level() -> str:
        return llmbackend.get_response("openai", MODEL, PROMPT, CONFIG, api_key=API_KEY,
                                       base_url=base_url)

    def llmbackend_typed() -> str:
        return client.generate(PROMPT, CONFIG).unwrap().text

    sdk = openai.OpenAI(api_key=API_KEY, base_url=base_url, max_retries=0)

    def openai_sdk() -> str:
        return sdk.responses.create(model=MODEL, input=PROMPT, temperature=0.7,
                                    max_output_tokens=100).output_text

    return {
        "raw http.client keep-alive POST + json.loads (floor)": raw_http_client,
        "bare pooled httpx2 POST + json.loads (baseline)": bare_httpx2,
        "llmbackend client.get_response": llmbackend_client,
        "llmbackend.get_response (top level)": llmbackend_top_level,
        "llmbackend client.generate (typed face)": llmbackend_typed,
        "openai SDK responses.create": openai_sdk,
    }


def call_table(port: int, rounds: int, calls: int) -> dict[str, float]:
    rows = contenders(port)
    answers = {name: call() for name, call in rows.items()}
    assert len(set(answers.values())) == 1, answers  # every contender reads the same answer
    for call in rows.values():  # warm up pools, caches and lazy imports
        for _ in range(max(calls // 10, 20)):
            call()
    samples: dict[str, list[float]] = {name: [] for name in rows}
    cpu: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(rounds):
        for name in random.sample(list(rows), len(rows)):
            call = rows[name]
            started, started_cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                call()
            samples[name].append((time.perf_counter() - started) / calls * 1e6)
            cpu[name].append((time.process_time() - started_cpu) / calls * 1e6)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    baseline = medians["bare pooled httpx2 POST + json.loads (baseline)"]
    print(f"\n## Per call, loopback Responses API ({rounds} rounds x {calls} calls, rows take "
          "turns)\n")
    cpu_baseline = cpu_medians["bare pooled httpx2 POST + json.loads (baseline)"]
    print("| contender | wall us/call (median) | best round | vs bare httpx2 | client CPU "
          "us/call | CPU vs bare httpx2 |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, values in samples.items():
        print(f"| {name} | {medians[name]:.0f} | {min(values):.0f} | "
              f"{medians[name] / baseline:.2f}x | {cpu_medians[name]:.0f} | "
              f"{cpu_medians[name] / cpu_baseline:.2f}x |")
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke run")
    args = parser.parse_args()
    rounds, calls, import_rounds = (3, 100, 5) if args.quick else (15, 400, 25)

    import_table(import_rounds)
    process, port = start_server()
    try:
        loaded_modules_after_a_call(port)
        medians = call_table(port, rounds, calls)
    finally:
        process.kill()
    baseline = medians["bare pooled httpx2 POST + json.loads (baseline)"]
    ours = medians["llmbackend client.get_response"]
    top = medians["llmbackend.get_response (top level)"]
    sdk = medians["openai SDK responses.create"]
    print(f"\nllmbackend adds {ours - baseline:.0f} us per call on top of the transport "
          f"({ours / baseline:.2f}x; top level {top / baseline:.2f}x); "
          f"the openai SDK takes {sdk / ours:.2f}x llmbackend's time.")


if __name__ == "__main__":
    main()
