"""Usage, normalized (issue 18, step 1): ``input_tokens`` means all the input tokens on every
provider, cache reads and writes among them, the cache writes' split by lifetime and the served
service tier read where the body gives them. Checked on real recorded bodies (tests/data/usage,
sources in its README; tests/data/streams) with the vendors' SDKs as the oracles of the raw
counts, and on the definitions themselves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from anthropic.types import Message

from llmbackend.providers import anthropic, gemini, openai
from llmbackend.types import GenerationRequest, Usage

USAGE = Path(__file__).parent / "data" / "usage"


def body(provider: str, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((USAGE / provider / f"{name}.json").read_text())
    return loaded


#: What each recorded Anthropic answer's usage says, normalized: (input, cache read, cache
#: write, 5m, 1h, output), as read off the files by hand.
ANTHROPIC = {
    "cache_read": (3 + 1111, 1111, 0, 0, 0, 406),
    "cache_read_and_write_5m": (3 + 1111 + 418, 1111, 418, 418, 0, 33),
    "cache_write_5m": (3 + 1111, 0, 1111, 1111, 0, 391),
}


@pytest.mark.parametrize("name", sorted(ANTHROPIC))
def test_anthropic_input_tokens_include_the_cache_reads_and_writes(name: str) -> None:
    recorded = body("anthropic", name)
    generation = anthropic.parse_message_object(
        GenerationRequest(model="claude-sonnet-4-5", input="hi"), recorded).unwrap()
    usage = generation.usage
    total, read, written, five, hour, output = ANTHROPIC[name]
    assert (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_tokens,
            usage.cache_write_5m_tokens, usage.cache_write_1h_tokens, usage.output_tokens) == (
        total, read, written, five, hour, output)
    assert usage.service_tier == "standard"
    # the SDK as the oracle of the raw counts: its input_tokens are the uncached ones
    sdk = Message.model_validate(recorded).usage
    assert usage.uncached_input_tokens == sdk.input_tokens
    assert usage.input_tokens == (sdk.input_tokens + (sdk.cache_read_input_tokens or 0)
                                  + (sdk.cache_creation_input_tokens or 0))
    assert sdk.cache_creation is not None
    assert (usage.cache_write_5m_tokens, usage.cache_write_1h_tokens) == (
        sdk.cache_creation.ephemeral_5m_input_tokens, sdk.cache_creation.ephemeral_1h_input_tokens)
    assert usage.total_tokens == usage.input_tokens + output


def test_a_body_without_cache_fields_reads_as_before() -> None:
    # an older (or compatible-server) answer: no cache fields at all, no tier
    usage = anthropic.parse_usage({"input_tokens": 12, "output_tokens": 5})
    assert usage == Usage(input_tokens=12, output_tokens=5)
    assert usage.uncached_input_tokens == 12
    # thinking tokens, where the newer bodies give them (output_tokens_details)
    assert anthropic.parse_usage({"input_tokens": 1, "output_tokens": 9, "output_tokens_details":
                                  {"thinking_tokens": 7}}).reasoning_tokens == 7
    # odd values are not counts
    assert anthropic.parse_usage({"input_tokens": "x", "cache_read_input_tokens": True,
                                  "service_tier": 3}) == Usage()


def test_openai_input_tokens_already_include_the_cached_ones() -> None:
    usage = openai.parse_usage({"input_tokens": 1563, "output_tokens": 16,
                                "input_tokens_details": {"cached_tokens": 1408},
                                "output_tokens_details": {"reasoning_tokens": 16}}, "flex")
    assert (usage.input_tokens, usage.cached_input_tokens, usage.uncached_input_tokens) == (
        1563, 1408, 155)
    assert usage.cache_write_tokens is None  # OpenAI reports none
    assert (usage.reasoning_tokens, usage.service_tier) == (16, "flex")
    assert openai.parse_usage(None, "default") == Usage(service_tier="default")


def test_gemini_prompt_tokens_already_include_the_cached_ones() -> None:
    usage = gemini.parse_usage({"promptTokenCount": 2000, "cachedContentTokenCount": 1500,
                                "candidatesTokenCount": 40, "thoughtsTokenCount": 60})
    assert (usage.input_tokens, usage.cached_input_tokens, usage.uncached_input_tokens) == (
        2000, 1500, 500)
    assert (usage.output_tokens, usage.reasoning_tokens) == (100, 60)
    assert usage.cache_write_tokens is None and usage.service_tier is None
