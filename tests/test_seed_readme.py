"""Every code block of the seed README runs as written, against the loopback emulators.

Blocks that need a capability not built yet are strict xfails naming the issue that builds it:
when that issue lands, the xfail turns into a failure until the block is switched on here.
"""

from __future__ import annotations

import re

import pytest

from llmbackend import UnsupportedError
from tests.anthropic_emulator import AnthropicEmulator
from tests.conftest import SEED
from tests.emulator import BatchPlan, OpenAIEmulator
from tests.gemini_emulator import GeminiBatchPlan, GeminiEmulator

BLOCKS = re.findall(r"```python\n(.*?)```", (SEED / "README.md").read_text(), flags=re.S)
TITLES = ["quickstart", "structured-outputs", "openai-batch", "gemini-batch", "anthropic-batch",
          "transformers", "vllm", "mlx"]


def _not_built(issue: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(raises=(AttributeError, UnsupportedError), strict=True,
                             reason=f"needs {issue}")


STATUS = {
    "quickstart": None,
    "structured-outputs": None,
    "openai-batch": None,
    "gemini-batch": None,
    "anthropic-batch": None,
    "transformers": _not_built("local providers (issue 6)"),
    "vllm": _not_built("local providers (issue 6)"),
    "mlx": _not_built("local providers (issue 6)"),
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
                                   gemini_env: GeminiEmulator) -> None:
    import llmbackend  # the blocks after the quickstart assume it is imported

    # Batches end at the first status check, so the README's polling loops never sleep.
    openai_env.batch_plan = BatchPlan(finish_after=1, shuffle_seed=0)
    gemini_env.batch_plan = GeminiBatchPlan(finish_after=1, shuffle_seed=0)

    namespace = {"__name__": "seed_readme", "llmbackend": llmbackend}
    exec(compile(block, "<seed README>", "exec"), namespace)
    assert openai_env.requests or anthropic_env.requests or gemini_env.requests, \
        "the block talked to the provider"
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
