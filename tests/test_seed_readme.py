"""Every code block of the seed README runs as written, against the loopback emulators.

Blocks that need a capability not built yet are strict xfails naming the issue that builds it:
when that issue lands, the xfail turns into a failure until the block is switched on here.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from llmbackend import MissingDependencyError, UnsupportedError
from tests.anthropic_emulator import AnthropicEmulator
from tests.conftest import SEED
from tests.emulator import BatchPlan, OpenAIEmulator
from tests.gemini_emulator import GeminiBatchPlan, GeminiEmulator

BLOCKS = re.findall(r"```python\n(.*?)```", (SEED / "README.md").read_text(), flags=re.S)
TITLES = ["quickstart", "structured-outputs", "openai-batch", "gemini-batch", "anthropic-batch",
          "transformers", "vllm", "mlx"]


def _not_built(issue: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(raises=(AttributeError, UnsupportedError, MissingDependencyError),
                             strict=True, reason=f"needs {issue}")


def _needs(module: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(importlib.util.find_spec(module) is None,
                              reason=f"{module} is not installed")


STATUS = {
    "quickstart": None,
    "structured-outputs": None,
    "openai-batch": None,
    "gemini-batch": None,
    "anthropic-batch": None,
    "transformers": _needs("transformers"),
    "vllm": _needs("vllm"),
    "mlx": _needs("mlx_lm"),
}


def test_the_readme_has_the_blocks_this_test_knows() -> None:
    assert len(BLOCKS) == len(TITLES)
    assert "get_response" in BLOCKS[0]
    assert "StructuredOutput(pydantic_model=Summary)" in BLOCKS[1]


@pytest.mark.parametrize("block", [
    # The quickstart's one-off call works today on its own, before the batch part of the block.
    pytest.param(BLOCKS[0].split("# Batch")[0], id="quickstart-sync"),
    *(pytest.param(code, id=title, marks=[STATUS[title]] if STATUS[title] else [])
      for title, code in zip(TITLES, BLOCKS, strict=True)),
])
def test_seed_block_runs_as_written(block: str, openai_env: OpenAIEmulator,
                                   anthropic_env: AnthropicEmulator,
                                   gemini_env: GeminiEmulator,
                                   offline_hub: Callable[[str], Path]) -> None:
    import llmbackend  # the blocks after the quickstart assume it is imported

    # The local examples name Hub models: the tiny test model answers under their names.
    for repo in ("mistralai/Mistral-7B-Instruct-v0.3", "facebook/opt-125m",
                 "mlx-community/Llama-3.2-3B-Instruct-4bit"):
        offline_hub(repo)
    # Batches end at the first status check, so the README's polling loops never sleep.
    openai_env.batch_plan = BatchPlan(finish_after=1, shuffle_seed=0)
    gemini_env.batch_plan = GeminiBatchPlan(finish_after=1, shuffle_seed=0)

    namespace = {"__name__": "seed_readme", "llmbackend": llmbackend}
    exec(compile(block, "<seed README>", "exec"), namespace)
    local = any(f'"{name}"' in block for name in ("transformers", "vllm", "mlx"))
    assert local or openai_env.requests or anthropic_env.requests or gemini_env.requests, \
        "the block talked to the provider"
    if local and "batch" in namespace:  # one answer per prompt, every one a string
        results = namespace["batch"].results()  # type: ignore[attr-defined]
        assert len(results) == 2 and all(isinstance(text, str) for text in results)
    if "gemini" in block:  # the Gemini example: answers re-keyed into input order
        assert namespace["summaries"] == [
            "Echo: Summarize: The quick brown fox jumps over the lazy dog.",
            "Echo: Summarize: A tale of two cities is a novel..."]
    if "claude" in block:  # the Anthropic example: three prompts, answered concurrently
        assert namespace["results"] == ["Echo: One", "Echo: Two", "Echo: Three"]
        assert len(anthropic_env.requests) == 3
    if "items" in namespace:  # the OpenAI batch example: one Item per input, in order
        assert [type(item).__name__ for item in namespace["items"]] == ["Item", "Item"]
        uploaded = next(f for f in openai_env.files.values() if f.purpose == "batch")
        assert [line["custom_id"] for line in uploaded.lines()] == ["a", "b"]
