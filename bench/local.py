"""Benchmark (not a test): a batch of 64 prompts on the tiny local model, per runtime, through
llmbackend against the two hand-written ways.

    .venv/bin/python bench/local.py            # 64 prompts, 7 rounds
    .venv/bin/python bench/local.py --quick    # 16 prompts, 1 round

For each installed runtime (transformers, MLX, vLLM), the same greedy job (chat template, 32 new
tokens at most) runs three ways:
- llmbackend: ``client.submit_batch(prompts).results()``;
- a hand-written loop of single generate calls (``model.generate`` one prompt at a time;
  ``mlx_lm.generate``);
- a hand-written batched generate (one left-padded ``model.generate``; ``mlx_lm.batch_generate``;
  one ``llm.generate``, on the client's own LLM since vLLM allows one model per process).
The table gives prompts/s, generated tokens/s and llmbackend's time relative to the best
hand-written way (1.00 = as fast). torch runs on one thread here: on a small, shared machine its
thread pool makes timings swing by a factor of three from run to run. The model is
tests/tiny_model.py's, built offline: the numbers measure the runtime's and llmbackend's
overhead, not a real model's speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from importlib.util import find_spec
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # vLLM in this process, on the CPU

import llmbackend
from tests.tiny_model import build_tiny_model

MAX_TOKENS = 32


def prompts(count: int) -> list[str]:
    topics = ["the sea", "a small red boat", "why the sky is blue", "bread", "a lighthouse",
              "winter", "trains", "the moon"]
    return [f"Tell me about {topics[i % len(topics)]} ({i})" for i in range(count)]


def chat(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


def transformers_ways(model_dir: Path, texts: list[str]) -> dict[str, Callable[[], int]]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # One thread: on a small shared machine torch's thread pool makes timings swing 3x.
    torch.set_num_threads(1)

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True)
    rendered = [tokenizer.apply_chat_template(chat(t), add_generation_prompt=True,
                                              tokenize=False) for t in texts]
    client = llmbackend.client("transformers", str(model_dir), apply_chat_template=True)

    def through_llmbackend() -> int:
        batch = client.submit_batch(texts, config={"max_tokens": MAX_TOKENS})
        return sum(g.unwrap().usage.output_tokens or 0 for g in batch.outcomes())

    def loop() -> int:
        made = 0
        with torch.no_grad():
            for text in rendered:
                encoded = tokenizer(text, return_tensors="pt", add_special_tokens=False)
                out = model.generate(**encoded, max_new_tokens=MAX_TOKENS, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id)
                made += out.shape[1] - encoded["input_ids"].shape[1]
        return made

    def batched() -> int:
        encoded = tokenizer(rendered, return_tensors="pt", padding=True,
                            add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**encoded, max_new_tokens=MAX_TOKENS, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        new = out[:, encoded["input_ids"].shape[1]:]
        return int((new != tokenizer.pad_token_id).sum())

    return {"llmbackend": through_llmbackend, "loop of single generate": loop,
            "one batched generate": batched}


def mlx_ways(model_dir: Path, texts: list[str]) -> dict[str, Callable[[], int]]:
    import mlx_lm
    from mlx_lm.sample_utils import make_sampler

    model, tokenizer = mlx_lm.load(str(model_dir))
    rendered = [tokenizer.apply_chat_template(chat(t), add_generation_prompt=True,
                                              tokenize=False) for t in texts]
    encoded = [tokenizer.encode(r, add_special_tokens=False) for r in rendered]
    client = llmbackend.client("mlx", str(model_dir), apply_chat_template=True)
    greedy = make_sampler(temp=0.0)

    def through_llmbackend() -> int:
        batch = client.submit_batch(texts, config={"max_tokens": MAX_TOKENS})
        return sum(g.unwrap().usage.output_tokens or 0 for g in batch.outcomes())

    def loop() -> int:
        made = 0
        for ids in encoded:
            text = mlx_lm.generate(model, tokenizer, ids, max_tokens=MAX_TOKENS, sampler=greedy)
            made += len(tokenizer.encode(text, add_special_tokens=False))
        return made

    def batched() -> int:
        response = mlx_lm.batch_generate(model, tokenizer, encoded, max_tokens=MAX_TOKENS,
                                         return_token_ids=True, sampler=greedy)
        return sum(len(ids) for ids in response.token_ids or [])

    return {"llmbackend": through_llmbackend, "loop of single generate": loop,
            "one batched generate (batch_generate)": batched}


VLLM_KWARGS = {"enforce_eager": True, "distributed_executor_backend": "uni",
               "kv_cache_memory_bytes": 64 << 20, "dtype": "float32", "max_model_len": 256}


def vllm_ways(model_dir: Path, texts: list[str]) -> dict[str, Callable[[], int]]:
    from vllm import SamplingParams

    client = llmbackend.client("vllm", str(model_dir), apply_chat_template=True,
                               llm_kwargs=VLLM_KWARGS)
    client.get_response("warm up", config={"max_tokens": 1})
    # vLLM allows one model per process: the hand-written ways use the client's own LLM.
    llm = client._backend.engine._llm  # type: ignore[attr-defined]
    tokenizer = llm.get_tokenizer()
    requests = [{"prompt_token_ids": tokenizer.encode(
        tokenizer.apply_chat_template(chat(t), add_generation_prompt=True, tokenize=False),
        add_special_tokens=False)} for t in texts]
    params = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS)

    def through_llmbackend() -> int:
        batch = client.submit_batch(texts, config={"max_tokens": MAX_TOKENS})
        return sum(g.unwrap().usage.output_tokens or 0 for g in batch.outcomes())

    def loop() -> int:
        return sum(len(llm.generate([r], params, use_tqdm=False)[0].outputs[0].token_ids)
                   for r in requests)

    def batched() -> int:
        return sum(len(o.outputs[0].token_ids)
                   for o in llm.generate(requests, params, use_tqdm=False))

    return {"llmbackend": through_llmbackend, "loop of single generate": loop,
            "one batched llm.generate": batched}


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 prompts, one round")
    args = parser.parse_args(list(argv) if argv is not None else None)
    count = 16 if args.quick else 64
    rounds = 1 if args.quick else 7
    texts = prompts(count)
    model_dir = build_tiny_model(Path(tempfile.mkdtemp()) / "tiny")
    runtimes = [("transformers", transformers_ways), ("mlx", mlx_ways), ("vllm", vllm_ways)]
    for name, ways_of in runtimes:
        module = {"transformers": "transformers", "mlx": "mlx_lm", "vllm": "vllm"}[name]
        if find_spec(module) is None:
            print(f"\n{name}: not installed, skipped")
            continue
        ways = ways_of(model_dir, texts)
        for run in ways.values():  # warm-up: loads, compiles, caches
            run()
        seconds: dict[str, list[float]] = {way: [] for way in ways}
        tokens: dict[str, int] = {}
        for _ in range(rounds):
            for way, run in ways.items():
                started = time.perf_counter()
                tokens[way] = run()
                seconds[way].append(time.perf_counter() - started)
        median = {way: statistics.median(values) for way, values in seconds.items()}
        best = min(t for way, t in median.items() if way != "llmbackend")
        print(f"\n{name}: {count} prompts, greedy, at most {MAX_TOKENS} new tokens "
              f"(median of {rounds})")
        print("| way | s | prompts/s | tokens/s | time vs best hand-written |")
        print("|---|---:|---:|---:|---:|")
        for way, value in median.items():
            print(f"| {way} | {value:.2f} | {count / value:.0f} | {tokens[way] / value:.0f} | "
                  f"{value / best:.2f} |")


if __name__ == "__main__":
    main()
