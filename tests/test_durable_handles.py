"""Batch handles saved as JSON (``Batch.to_dict()``) and restored in another process
(``llmbackend.restore_batch``), for every provider with remote batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from pydantic import BaseModel

import llmbackend
from llmbackend import ConfigurationError, StructuredOutput, UnsupportedError
from tests.anthropic_emulator import API_KEY as ANTHROPIC_KEY
from tests.anthropic_emulator import AnthropicEmulator, MessageBatchPlan
from tests.conftest import ROOT
from tests.emulator import API_KEY, BatchPlan, OpenAIEmulator
from tests.gemini_emulator import API_KEY as GEMINI_KEY
from tests.gemini_emulator import GeminiBatchPlan, GeminiEmulator

PROMPTS = [f"prompt {i}" for i in range(5)]
IDS = ["zeta", "alpha", "mid", "b", "a"]  # not in any sorted order


class Item(BaseModel):
    title: str


def roundtrip(batch: llmbackend.Batch[Any]) -> dict[str, Any]:
    saved = batch.to_dict()
    text = json.dumps(saved)  # plain JSON
    return json.loads(text)  # type: ignore[no-any-return]


def test_openai_handle_restores_in_input_order_without_reading_inputs_back(
    openai_env: OpenAIEmulator,
) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=1, shuffle_seed=3)
    client = llmbackend.client("openai", "gpt-4o-mini")
    batch = client.submit_batch(PROMPTS, batch_options={"custom_ids": IDS,
                                                        "max_requests_per_batch": 2})
    saved = roundtrip(batch)
    assert saved["format"] == "llmbackend.batch/1"
    assert saved["provider"] == "openai"
    assert [p["custom_ids"] for p in saved["parts"]] == [IDS[:2], IDS[2:4], IDS[4:]]
    assert API_KEY not in json.dumps(saved) and "127.0.0.1" not in json.dumps(saved)
    before = len(openai_env.requests)
    restored = llmbackend.restore_batch(saved)
    assert restored.id == batch.id
    assert restored.results() == [f"Echo: {p}" for p in PROMPTS]
    fetched = [r.path for r in openai_env.requests[before:]]
    input_files = {b.api_object["input_file_id"] for b in openai_env.batches.values()}
    assert not any(f"/files/{f}/content" in path for f in input_files for path in fetched)


def test_a_structured_handle_restores_with_or_without_the_model(
    openai_env: OpenAIEmulator,
) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=1)
    client = llmbackend.client("openai", "gpt-4o-mini")
    batch = client.submit_batch(PROMPTS[:2], schema=StructuredOutput(pydantic_model=Item))
    saved = roundtrip(batch)
    assert saved["schema"]["name"] == "Item"
    assert llmbackend.restore_batch(saved, schema=StructuredOutput(
        pydantic_model=Item)).results() == [Item(title="example")] * 2
    assert client.restore_batch(saved).results() == [{"title": "example"}] * 2


def test_anthropic_handle_keeps_your_custom_id_order(anthropic_env: AnthropicEmulator) -> None:
    anthropic_env.batch_plan = MessageBatchPlan(finish_after=1, shuffle_seed=2)
    client = llmbackend.client("anthropic", "claude-sonnet-4-5")
    batch = client.submit_batch(PROMPTS, batch_options={"mode": "native", "custom_ids": IDS})
    restored = llmbackend.restore_batch(roundtrip(batch))
    # Resumed by id alone the order would be natural order of the ids; the saved handle knows.
    assert restored.custom_ids == tuple(IDS)
    assert restored.results() == [f"Echo: {p}" for p in PROMPTS]


def test_gemini_handle_restores(gemini_env: GeminiEmulator) -> None:
    gemini_env.batch_plan = GeminiBatchPlan(finish_after=1, shuffle_seed=4)
    client = llmbackend.client("gemini", "gemini-2.5-flash")
    batch = client.submit_batch(PROMPTS, batch_options={"custom_ids": IDS})
    restored = client.restore_batch(roundtrip(batch))
    assert restored.custom_ids == tuple(IDS)
    assert restored.results() == [f"Echo: {p}" for p in PROMPTS]


def test_a_handle_restores_in_a_new_process(openai_env: OpenAIEmulator) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=1, shuffle_seed=6)
    batch = llmbackend.client("openai", "gpt-4o-mini").submit_batch(
        PROMPTS, batch_options={"custom_ids": IDS})
    code = ("import json, sys, llmbackend\n"
            "batch = llmbackend.restore_batch(json.loads(sys.stdin.read()))\n"
            "print(json.dumps(batch.results()))\n")
    env = {**os.environ, "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": openai_env.base_url,
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(batch.to_dict()),
                          env=env, check=True, capture_output=True, text=True, timeout=60)
    assert json.loads(done.stdout) == [f"Echo: {p}" for p in PROMPTS]


def test_what_cannot_be_saved_or_restored_says_so(
    anthropic_env: AnthropicEmulator, openai_env: OpenAIEmulator
) -> None:
    immediate = llmbackend.client("anthropic", "claude-sonnet-4-5").submit_batch(["a"])
    with pytest.raises(UnsupportedError, match=r"save batch\.results"):
        immediate.to_dict()
    with pytest.raises(ConfigurationError, match=r"Batch\.to_dict"):
        llmbackend.restore_batch({"provider": "openai", "id": "batch_1"})
    openai_env.batch_plan = BatchPlan(finish_after=1)
    saved = llmbackend.client("openai", "gpt-4o-mini").submit_batch(["a"]).to_dict()
    with pytest.raises(ConfigurationError, match="not a 'anthropic' one"):
        llmbackend.client("anthropic", "m", api_key=ANTHROPIC_KEY,
                          base_url=anthropic_env.base_url).restore_batch(saved)
    assert GEMINI_KEY  # the three emulators' keys are distinct test values


@pytest.mark.parametrize(("edit", "says"), [
    ({"schema": {"name": "summary"}}, "'schema' must be null or"),
    ({"schema": "a schema"}, "'schema' must be null or"),
    ({"options": ["structured_output"]}, "'options' must be an object"),
    ({"order": "abc"}, "'order' must be a list"),
])
def test_a_hand_edited_handle_is_a_configuration_error(
    openai_env: OpenAIEmulator, edit: dict[str, object], says: str
) -> None:
    # The saved JSON is a file people open: a wrong shape must say what, not raise KeyError.
    openai_env.batch_plan = BatchPlan(finish_after=1)
    saved = llmbackend.client("openai", "gpt-4o-mini").submit_batch(["a"]).to_dict()
    requests = len(openai_env.requests)
    with pytest.raises(ConfigurationError, match=says):
        llmbackend.restore_batch({**saved, **edit})
    assert len(openai_env.requests) == requests  # said before any request


@pytest.mark.parametrize("provider", ["transformers", "vllm", "mlx"])
def test_a_local_batch_cannot_be_reattached_by_id(provider: str) -> None:
    with pytest.raises(ConfigurationError, match="runs batches in this process") as raised:
        llmbackend.get_batch(provider, "immediate-0123")
    assert raised.value.key == "provider"
