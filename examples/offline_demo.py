"""The main job, end to end, on a fresh machine: no API key, no internet, about half a minute.

    .venv/bin/python examples/offline_demo.py

It drives the ``llmbackend`` command line, as you would from a shell, in two parts. Read what
each part shows, and what it does not:

1. **A provider-native batch of 1,000 prompts, and single calls, against a loopback emulator of
   the OpenAI API** (``tests/emulator.py``, started here on 127.0.0.1). Everything on
   llmbackend's side is the real thing: the requests and the JSONL input file it builds, the
   HTTP stack, the Files upload, the batch creation, the polling, the download of the result
   file, and the matching of every result line to its prompt by custom id, in input order. The
   emulator is not a model: it answers each prompt with ``Echo: <prompt>`` (and a schema with an
   example object), and it shuffles the result lines as the real API may.
2. **A real local runtime** (transformers, CPU) generating for a batch of prompts with a tiny
   random Llama model built here (``tests/tiny_model.py``, about 0.5 MB): real tokenization, chat
   template, batched generation and decoding. The weights are random, so the words are
   gibberish; the machinery is what a real model from the Hub goes through.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.emulator import API_KEY, BatchPlan, OpenAIEmulator  # noqa: E402
from tests.tiny_model import build_tiny_model  # noqa: E402

COMMAND = Path(sys.executable).with_name("llmbackend")


def llmbackend(*args: str, env: dict[str, str], show: int = 6) -> str:
    """Run the command line as a shell would, print the command and the start of its output."""
    print(f"\n$ llmbackend {shlex.join(args)}")
    started = time.perf_counter()
    done = subprocess.run([str(COMMAND), *args], env=env, capture_output=True, text=True,
                          check=False)
    lines = done.stdout.splitlines()
    for line in lines[:show]:
        print(f"  {line}")
    if len(lines) > show:
        print(f"  ... ({len(lines) - show} more lines)")
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        raise SystemExit(f"llmbackend exited with {done.returncode}")
    print(f"  [exit 0, {time.perf_counter() - started:.1f} s]")
    return done.stdout


def remote_part(work: Path) -> None:
    print("=" * 78)
    print("1. The OpenAI API, through a loopback emulator that echoes (not a model)")
    print("=" * 78)
    emulator = OpenAIEmulator().start()
    emulator.batch_plan = BatchPlan(finish_after=4)  # "in_progress" for a few polls, then done
    env = {**os.environ, "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": emulator.base_url,
           "LLMBACKEND_STATE_DIR": str(work / "state")}
    try:
        llmbackend("run", "-p", "openai", "-m", "gpt-4o-mini", "--temperature", "0.7",
                   "Write a haiku about oceans.", env=env)
        schema = work / "summary.schema.json"
        schema.write_text(json.dumps({
            "type": "object", "properties": {"title": {"type": "string"},
                                             "bullets": {"type": "array",
                                                         "items": {"type": "string"}}},
            "required": ["title", "bullets"], "additionalProperties": False}))
        llmbackend("run", "-p", "openai", "-m", "gpt-4o-mini", "--schema", str(schema),
                   "Summarize the quarterly report.", env=env)

        prompts = work / "prompts.txt"
        prompts.write_text("".join(f"Translate to German: sentence number {i}\n"
                                   for i in range(1000)))
        batch_id = llmbackend("batch", "submit", "-p", "openai", "-m", "gpt-4o-mini",
                              "--display-name", "demo", str(prompts), env=env).strip()
        llmbackend("batch", "status", batch_id, env=env)
        llmbackend("batch", "wait", batch_id, "--poll-interval", "0.2", env=env)
        results = work / "results.jsonl"
        llmbackend("batch", "results", batch_id, "-o", str(results), env=env)
        lines = [json.loads(line) for line in results.read_text().splitlines()]
        in_order = all(line["answer"] == f"Echo: Translate to German: sentence number {i}"
                       for i, line in enumerate(lines))
        print(f"\n  {results.name}: {len(lines)} lines; each answer is its own prompt's, in "
              f"input order: {in_order}")
        print(f"  first line: {json.dumps(lines[0])}")
        uploads = [r for r in emulator.requests if r.path == "/v1/files"]
        print(f"  the emulator received {len(emulator.requests)} requests, {len(uploads)} of "
              "them the upload of the JSONL input file")
        if not in_order or len(lines) != 1000:
            raise SystemExit("the results do not match their prompts")
    finally:
        emulator.stop()


def local_part(work: Path) -> None:
    print()
    print("=" * 78)
    print("2. A real local runtime (transformers) on a tiny random model: random words")
    print("=" * 78)
    model = build_tiny_model(work / "tiny-llama")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LLMBACKEND_STATE_DIR": str(work / "state")}
    llmbackend("run", "-p", "transformers", "-m", str(model), "--max-tokens", "12",
               "--seed", "0", "Hello!", env=env)
    prompts = work / "local.txt"
    prompts.write_text("Hello!\nBonjour !\nHallo!\n")
    llmbackend("batch", "submit", "-p", "transformers", "-m", str(model), "--max-tokens", "12",
               str(prompts), env=env)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="llmbackend-demo-") as directory:
        work = Path(directory)
        remote_part(work)
        local_part(work)
    print("\nDone: the command line ran the main job with no API key and no network.")


if __name__ == "__main__":
    main()
