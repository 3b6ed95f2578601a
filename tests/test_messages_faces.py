"""Message-list inputs end to end, on every face: the top-level functions, ``Client``, the
fan-outs, batches in both modes and saved handles, through the loopback emulators of OpenAI,
Anthropic and Gemini (what reached the wire is checked), bad inputs refused before anything is
sent, and the tiny local model (a message list is ``extra["conversation"]``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from returns.result import Failure

import llmbackend
from llmbackend import ConfigurationError, Message, StructuredOutput, UnsupportedError
from llmbackend.providers import gemini_batch
from tests.anthropic_emulator import MessageBatchPlan
from tests.emulator import BatchPlan, Recorded
from tests.gemini_emulator import GeminiBatchPlan

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5",
          "gemini": "gemini-2.5-flash"}
PROVIDERS = list(MODELS)
ENV_FIXTURES = {"openai": "openai_env", "anthropic": "anthropic_env", "gemini": "gemini_env"}
GEMINI_ROLES = {"user": "user", "assistant": "model"}

PLAIN = "a plain prompt"
CONV: list[Any] = [{"role": "system", "content": "Be brief."},
                   {"role": "user", "content": "2+2?"},
                   {"role": "assistant", "content": "4"},
                   Message(role="user", content="and 3+3?")]
SOLO = [{"role": "user", "content": "just me"}]
TRIO = (Message(role="user", content="hi"), Message(role="assistant", content="hello"),
        {"role": "user", "content": "bye"})
MIXED: list[Any] = [PLAIN, CONV, SOLO, TRIO]
IDS = ["zeta", "alpha", "mid", "b"]  # not in any sorted order
PREFILL = [{"role": "user", "content": "Colours as JSON?"}, {"role": "assistant", "content": "["}]

#: CONV as each provider's native body, written out.
CONV_TURNS = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
              {"role": "user", "content": "and 3+3?"}]
CONV_WIRE: dict[str, dict[str, Any]] = {
    "openai": {"model": "gpt-4o-mini", "instructions": "Be brief.", "input": CONV_TURNS},
    "anthropic": {"model": "claude-sonnet-4-5", "max_tokens": 4096, "system": "Be brief.",
                  "messages": CONV_TURNS},
    "gemini": {"systemInstruction": {"parts": [{"text": "Be brief."}]}, "contents": [
        {"role": "user", "parts": [{"text": "2+2?"}]},
        {"role": "model", "parts": [{"text": "4"}]},
        {"role": "user", "parts": [{"text": "and 3+3?"}]}]},
}


# --- helpers --------------------------------------------------------------------------------------


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    """``asyncio.run(main())``, bounded so that a hang fails instead of hanging."""
    async def bounded() -> Any:
        return await asyncio.wait_for(main(), timeout=60)

    return asyncio.run(bounded())


def as_dicts(value: Sequence[Any]) -> list[dict[str, str]]:
    return [m.to_dict() if isinstance(m, Message) else dict(m) for m in value]


def expected_body(provider: str, value: Any, system: str | None = None) -> dict[str, Any]:
    """The body the provider's docs say ``value`` (a prompt or a conversation without same-role
    runs) makes: OpenAI ``instructions`` + ``input``, Anthropic ``system`` + ``messages``,
    Gemini ``systemInstruction`` + ``contents``."""
    if isinstance(value, str):
        texts, turns = ([system] if system else []), [{"role": "user", "content": value}]
    else:
        messages = as_dicts(value)
        texts = [m["content"] for m in messages if m["role"] == "system"]
        turns = [m for m in messages if m["role"] != "system"]
    joined = "\n\n".join(texts) if texts else None
    body: dict[str, Any]
    if provider == "openai":
        body = {"model": MODELS[provider],
                "input": turns[0]["content"] if len(turns) == 1 else turns}
        if joined is not None:
            body["instructions"] = joined
    elif provider == "anthropic":
        body = {"model": MODELS[provider], "max_tokens": 4096, "messages": turns}
        if joined is not None:
            body["system"] = joined
    else:
        body = {"contents": [{"role": GEMINI_ROLES[t["role"]], "parts": [{"text": t["content"]}]}
                             for t in turns]}
        if joined is not None:
            body["systemInstruction"] = {"parts": [{"text": joined}]}
    return body


def expected_answer(provider: str, value: Any) -> str:
    """What the emulators answer: OpenAI echoes its ``input`` (a string, or the list of items as
    Python shows it), Anthropic and Gemini the last user turn."""
    if provider == "openai":
        return f"Echo: {expected_body(provider, value)['input']}"
    if isinstance(value, str):
        return f"Echo: {value}"
    return "Echo: " + [m for m in as_dicts(value) if m["role"] == "user"][-1]["content"]


def canonical(bodies: Sequence[dict[str, Any]]) -> list[str]:
    """Bodies as a sorted list of canonical JSON: concurrent requests come in any order."""
    return sorted(json.dumps(body, sort_keys=True) for body in bodies)


class Remote:
    """One provider behind its emulator, wired in through the environment."""

    def __init__(self, name: str, emulator: Any) -> None:
        self.name = name
        self.model = MODELS[name]
        self.emulator = emulator
        self._clients: list[llmbackend.Client] = []
        self.file_mode = False

    def client(self, **options: Any) -> llmbackend.Client:
        made = llmbackend.client(self.name, self.model, **options)
        self._clients.append(made)
        return made

    def close(self) -> None:
        for made in self._clients:
            made.close()

    @property
    def requests(self) -> list[Recorded]:
        return list(self.emulator.requests)

    def _is_generation(self, recorded: Recorded) -> bool:
        if recorded.method != "POST":
            return False
        return {"openai": recorded.path == "/v1/responses",
                "anthropic": recorded.path == "/v1/messages",
                "gemini": recorded.path.endswith(":generateContent")}[self.name]

    def sent(self) -> list[dict[str, Any]]:
        """The bodies of the single generation requests, in the order they arrived."""
        return [r.json() for r in self.requests if self._is_generation(r)]

    def native_items(self) -> list[tuple[str, dict[str, Any]]]:
        """``(custom id, body)`` of every item uploaded for native batches, in upload order:
        OpenAI's JSONL file lines, Anthropic's create body, Gemini's inline requests."""
        if self.name == "openai":
            return [(line["custom_id"], line["body"]) for stored in self.emulator.files.values()
                    if stored.purpose == "batch" for line in stored.lines()]
        items: list[tuple[str, dict[str, Any]]] = []
        for recorded in self.requests:
            if recorded.method != "POST":
                continue
            if self.name == "anthropic" and recorded.path == "/v1/messages/batches":
                items += [(i["custom_id"], i["params"]) for i in recorded.json()["requests"]]
            if self.name == "gemini" and recorded.path.endswith(":batchGenerateContent"):
                source = recorded.json()["batch"]["inputConfig"]
                if "requests" in source:  # inline
                    items += [(i["metadata"]["key"], i["request"])
                              for i in source["requests"]["requests"]]
                else:  # file mode: the uploaded JSONL file
                    stored = self.emulator.files[source["fileName"].removeprefix("files/")]
                    items += [(line["key"], line["request"]) for line in stored.lines()]
        return items


    def result_order(self) -> list[str]:
        """The custom ids in the order the provider returned the native batch's results."""
        if self.name == "openai":
            return [line["custom_id"] for stored in self.emulator.files.values()
                    if stored.purpose == "batch_output" for line in stored.lines()]
        if self.name == "anthropic":
            return [line["custom_id"] for batch in self.emulator.batches.values()
                    for line in batch.result_lines()]
        return [entry.get("key") or entry["metadata"]["key"]
                for batch in self.emulator.batches.values() for entry in batch.responses]


@pytest.fixture(params=PROVIDERS)
def remote(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Remote]:
    """The provider ``request.param`` names; ``gemini-file`` is Gemini with native batches
    sent as an uploaded file (the inline limit lowered)."""
    name, _, variant = request.param.partition("-")
    if variant == "file":
        monkeypatch.setattr(gemini_batch, "INLINE_LIMIT", 200)
    emulator = request.getfixturevalue(ENV_FIXTURES[name])
    # Results come back shuffled, so that matching by custom id (not position) is what works.
    emulator.batch_plan = {"openai": BatchPlan, "anthropic": MessageBatchPlan,
                           "gemini": GeminiBatchPlan}[name](finish_after=1, shuffle_seed=3)
    made = Remote(name, emulator)
    made.file_mode = variant == "file"
    yield made
    made.close()


# --- one input: every face ------------------------------------------------------------------------


def _top_level(remote: Remote, face: str, value: Any, config: Any = None) -> str:
    name, model = remote.name, remote.model
    if face == "get_response":
        return llmbackend.get_response(name, model, value, config)
    if face == "generate":
        return llmbackend.generate(name, model, value, config).unwrap().text
    if face == "aget_response":
        return run(lambda: llmbackend.aget_response(name, model, value, config))  # type: ignore[no-any-return]
    generation = run(lambda: llmbackend.agenerate(name, model, value, config))
    return generation.unwrap().text  # type: ignore[no-any-return]


def _on_client(client: llmbackend.Client, face: str, value: Any, config: Any = None) -> str:
    if face == "get_response":
        return client.get_response(value, config)
    if face == "generate":
        return client.generate(value, config).unwrap().text
    if face == "aget_response":
        return run(lambda: client.aget_response(value, config))  # type: ignore[no-any-return]
    return run(lambda: client.agenerate(value, config)).unwrap().text  # type: ignore[no-any-return]


SINGLE_FACES = ["get_response", "generate", "aget_response", "agenerate"]


@pytest.mark.parametrize("face", SINGLE_FACES)
@pytest.mark.parametrize("where", ["top-level", "client"])
def test_every_single_face_sends_a_conversation_natively(
    remote: Remote, where: str, face: str
) -> None:
    if where == "top-level":
        answer = _top_level(remote, face, CONV)
    else:
        answer = _on_client(remote.client(), face, CONV)
    assert answer == expected_answer(remote.name, CONV)
    (body,) = remote.sent()
    assert body == CONV_WIRE[remote.name]
    assert body == expected_body(remote.name, CONV)  # the helper the other tests use agrees


def test_the_typed_face_reports_the_provider_of_a_conversation(remote: Remote) -> None:
    generation = remote.client().generate(TRIO).unwrap()
    assert generation.provider == remote.name
    assert generation.text == expected_answer(remote.name, TRIO)
    assert remote.sent() == [expected_body(remote.name, TRIO)]


def test_a_single_user_message_sends_exactly_the_plain_prompts_body(remote: Remote) -> None:
    client = remote.client()
    answers = [client.get_response(value) for value in (
        "Hi there", [{"role": "user", "content": "Hi there"}],
        [Message(role="user", content="Hi there")], (Message(role="user", content="Hi there"),))]
    assert answers == ["Echo: Hi there"] * 4
    first, *others = remote.sent()
    assert first == expected_body(remote.name, "Hi there")
    assert others == [first] * 3


def test_a_system_message_is_the_configs_system_prompt(remote: Remote) -> None:
    client = remote.client()
    client.get_response("Hi there", {"extra": {"system": "Be brief."}})
    client.get_response([{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "Hi there"}])
    as_config, as_message = remote.sent()
    assert as_message == as_config == expected_body(remote.name, "Hi there", "Be brief.")


def test_several_system_messages_are_joined_with_a_blank_line(remote: Remote) -> None:
    conversation = [{"role": "system", "content": "One."}, {"role": "user", "content": "q"},
                    {"role": "system", "content": "Two."}, {"role": "assistant", "content": "a"},
                    {"role": "user", "content": "q2"}]
    remote.client().get_response(conversation)
    (body,) = remote.sent()
    system = {"openai": lambda: body["instructions"], "anthropic": lambda: body["system"],
              "gemini": lambda: body["systemInstruction"]["parts"][0]["text"]}[remote.name]()
    assert system == "One.\n\nTwo."
    assert body == expected_body(remote.name, conversation)


# --- fan-outs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("face", ["map", "amap"])
def test_fan_outs_take_mixed_inputs_and_answer_in_input_order(remote: Remote, face: str) -> None:
    client = remote.client()
    if face == "map":
        outcomes = list(client.map(MIXED, concurrency=4))
    else:
        async def collect() -> list[Any]:
            return [outcome async for outcome in client.amap(MIXED, concurrency=4)]

        outcomes = run(collect)
    assert [outcome.unwrap().text for outcome in outcomes] == [
        expected_answer(remote.name, value) for value in MIXED]
    assert canonical(remote.sent()) == canonical([expected_body(remote.name, v) for v in MIXED])


def test_amap_takes_an_async_iterable_of_conversations(remote: Remote) -> None:
    client = remote.client()

    async def inputs() -> Any:
        for value in MIXED:
            yield value

    async def collect() -> list[Any]:
        return [o async for o in client.amap(inputs(), concurrency=2)]

    assert [o.unwrap().text for o in run(collect)] == [
        expected_answer(remote.name, value) for value in MIXED]


# --- batches --------------------------------------------------------------------------------------


def _submit(remote: Remote, face: str, inputs: Any, config: Any = None,
            batch_options: dict[str, Any] | None = None) -> llmbackend.Batch[Any]:
    """A batch through ``face``; the handle once the batch has ended."""
    name, model = remote.name, remote.model
    options = batch_options
    if face == "submit_batch":
        batch = remote.client().submit_batch(inputs, config, batch_options=options)
    elif face == "create_batch":
        batch = llmbackend.create_batch(inputs, name, model, config, batch_options=options)
    elif face == "asubmit_batch":
        client = remote.client()
        batch = run(lambda: client.asubmit_batch(inputs, config, batch_options=options))
    else:
        batch = run(lambda: llmbackend.acreate_batch(inputs, name, model, config,
                                                     batch_options=options))
    assert batch.wait(poll_interval=0.01) == "completed"
    return batch


BATCH_FACES = ["submit_batch", "create_batch", "asubmit_batch", "acreate_batch"]
MODES = ["native", "immediate"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("face", BATCH_FACES)
def test_batches_take_mixed_inputs_matched_by_custom_id(
    remote: Remote, face: str, mode: str
) -> None:
    batch = _submit(remote, face, MIXED, batch_options={"mode": mode, "custom_ids": IDS})
    assert batch.custom_ids == tuple(IDS)
    assert batch.results() == [expected_answer(remote.name, value) for value in MIXED]
    bodies = [expected_body(remote.name, value) for value in MIXED]
    if mode == "native":
        # Each uploaded item carries its own input's messages, under its own custom id.
        assert remote.native_items() == list(zip(IDS, bodies, strict=True))
        assert remote.sent() == []
        assert remote.result_order() not in ([], IDS)  # the results came back out of order
    else:
        assert remote.native_items() == []
        assert canonical(remote.sent()) == canonical(bodies)


@pytest.mark.parametrize("mode", MODES)
def test_a_batch_without_custom_ids_numbers_the_items(remote: Remote, mode: str) -> None:
    batch = _submit(remote, "submit_batch", MIXED, batch_options={"mode": mode})
    assert batch.custom_ids == tuple(f"request-{i}" for i in range(len(MIXED)))
    assert batch.results() == [expected_answer(remote.name, value) for value in MIXED]
    if mode == "native":
        assert [custom_id for custom_id, _ in remote.native_items()] == list(batch.custom_ids)


def test_a_native_item_is_the_body_the_single_call_sends(remote: Remote) -> None:
    client = remote.client()
    client.submit_batch(MIXED, batch_options={"mode": "native", "custom_ids": IDS})
    for value in MIXED:
        client.get_response(value)
    assert [body for _, body in remote.native_items()] == remote.sent()


@pytest.mark.parametrize("remote", ["openai", "anthropic", "gemini", "gemini-file"],
                         indirect=True)
@pytest.mark.parametrize("face", ["submit_batch", "acreate_batch"])
def test_native_items_with_a_config_are_the_single_calls_bodies(
    remote: Remote, face: str
) -> None:
    config = {"max_tokens": 50, "extra": {"metadata": {"user_id": "u1"}}} \
        if remote.name == "anthropic" else {"max_tokens": 50}
    batch = _submit(remote, face, MIXED, config, {"mode": "native", "custom_ids": IDS})
    assert batch.results() == [expected_answer(remote.name, value) for value in MIXED]
    items = remote.native_items()
    client = remote.client()
    for value in MIXED:
        client.get_response(value, config)
    assert items == list(zip(IDS, remote.sent(), strict=True))
    if remote.file_mode:
        assert [b.mode for b in remote.emulator.batches.values()] == ["file"]


@pytest.mark.parametrize("remote", ["openai", "anthropic"], indirect=True)
def test_a_split_batch_of_conversations_keeps_each_items_messages(remote: Remote) -> None:
    batch = remote.client().submit_batch(MIXED, batch_options={
        "mode": "native", "custom_ids": IDS, "max_requests_per_batch": 3})
    assert len(batch.to_dict()["parts"]) == 2
    assert remote.native_items() == [
        (custom_id, expected_body(remote.name, value)) for custom_id, value in zip(
            IDS, MIXED, strict=True)]
    assert batch.wait(poll_interval=0.01) == "completed"
    assert batch.results() == [expected_answer(remote.name, value) for value in MIXED]
    restored = llmbackend.restore_batch(json.loads(json.dumps(batch.to_dict())))
    assert restored.results() == batch.results()


@pytest.mark.parametrize("remote", ["openai", "gemini"], indirect=True)
def test_a_batch_of_conversations_reattached_by_id_answers_in_order(remote: Remote) -> None:
    batch = remote.client().submit_batch(MIXED, batch_options={"mode": "native"})
    assert batch.wait(poll_interval=0.01) == "completed"
    again = llmbackend.get_batch(remote.name, batch.id)
    assert again.results() == [expected_answer(remote.name, value) for value in MIXED]
    mine = remote.client().submit_batch(MIXED, batch_options={"mode": "native",
                                                                "custom_ids": IDS})
    assert mine.wait(poll_interval=0.01) == "completed"
    in_order = remote.client().get_batch(mine.id, custom_ids=IDS)
    assert in_order.results() == [expected_answer(remote.name, value) for value in MIXED]
    in_async = run(lambda: llmbackend.aget_batch(remote.name, mine.id, custom_ids=IDS))
    assert in_async.results() == in_order.results()


SCHEMA = StructuredOutput(schema={"type": "object", "properties": {"city": {"type": "string"}},
                                  "required": ["city"], "additionalProperties": False},
                          name="City")


def _without_format(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` less the structured-output fields, which the schema adds."""
    return {key: value for key, value in body.items()
            if key not in ("text", "output_config", "generationConfig")}


def test_a_conversation_with_a_schema_keeps_its_shape(remote: Remote) -> None:
    client = remote.client()
    assert client.get_response(CONV, schema=SCHEMA) == {"city": "example"}
    batch = client.submit_batch(MIXED, schema=SCHEMA, batch_options={"mode": "native"})
    assert batch.wait(poll_interval=0.01) == "completed"
    assert batch.results() == [{"city": "example"}] * len(MIXED)
    (body,) = remote.sent()
    assert _without_format(body) == CONV_WIRE[remote.name]
    assert [_without_format(item) for _, item in remote.native_items()] == [
        expected_body(remote.name, value) for value in MIXED]


@pytest.mark.parametrize("remote", ["anthropic"], indirect=True)
def test_anthropic_refuses_a_prefill_with_a_schema_before_sending(remote: Remote) -> None:
    with pytest.raises(UnsupportedError, match="schema") as raised:
        remote.client().get_response(PREFILL, schema=SCHEMA)
    assert raised.value.parameter == "input"
    with pytest.raises(UnsupportedError) as in_batch:
        remote.client().submit_batch([PLAIN, PREFILL], schema=SCHEMA,
                                     batch_options={"mode": "immediate"})
    assert in_batch.value.message.startswith("input #1 (custom id 'request-1'): ")
    assert remote.requests == []


# --- saved handles --------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["top-level", "client", "async"])
def test_a_saved_handle_of_message_inputs_restores_in_input_order(
    remote: Remote, how: str
) -> None:
    batch = remote.client().submit_batch(
        MIXED, batch_options={"mode": "native", "custom_ids": IDS})
    saved = json.loads(json.dumps(batch.to_dict()))
    assert saved["provider"] == remote.name
    if how == "top-level":
        restored = llmbackend.restore_batch(saved)
    elif how == "client":
        restored = remote.client().restore_batch(saved)
    else:
        restored = run(lambda: llmbackend.arestore_batch(saved))
    assert restored.id == batch.id
    assert restored.wait(poll_interval=0.01) == "completed"
    assert restored.custom_ids == tuple(IDS)
    assert restored.results() == [expected_answer(remote.name, value) for value in MIXED]


# --- bad input: named, and nothing sent -----------------------------------------------------------

BAD = {
    "unknown role": ([{"role": "tool", "content": "x"}], "message #0 of {} has the role 'tool'"),
    "empty list": ([], "{} is an empty list of messages"),
    "non-string content": ([{"role": "user", "content": 3}],
                           "message #0 of {} must have a string 'content', got int"),
    "only system": ([{"role": "system", "content": "x"}], "{} holds only system messages"),
    "not a message": ([{"role": "user", "content": "ok"}, ("user", "x")],
                      "message #1 of {} must be a dict {{'role': ..., 'content': ...}} or a "
                      "llmbackend.Message, got tuple"),
    "Message with an unknown role": ([Message(role="robot", content="x")],  # type: ignore[arg-type]
                                     "message #0 of {} has the role 'robot'"),
    "Message with bytes content": ([Message(role="user", content=b"x")],  # type: ignore[arg-type]
                                   "message #0 of {} must have a string 'content', got bytes"),
    "bare dict": ({"role": "user", "content": "x"},
                  "{} must be a string ({}) or a list of messages"),
}


def _said(case: str, name: str) -> str:
    text = BAD[case][1]
    if case == "bare dict":
        return text.format(name, "the prompt" if name == "input" else "a prompt")
    return text.format(name)


SINGLE_BAD_FACES = ["get_response", "agenerate", "client.generate", "client.aget_response"]


@pytest.mark.parametrize("face", SINGLE_BAD_FACES)
@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_input_is_named_and_nothing_is_sent(remote: Remote, case: str, face: str) -> None:
    value = BAD[case][0]
    with pytest.raises(ConfigurationError) as raised:
        if face.startswith("client."):
            _on_client(remote.client(), face.removeprefix("client."), value)
        else:
            _top_level(remote, face, value)
    assert raised.value.message.startswith(_said(case, "input"))
    assert raised.value.key == "input"
    assert remote.requests == []


@pytest.mark.parametrize("face", ["submit_batch-native", "submit_batch-immediate",
                                  "create_batch-native", "acreate_batch-native",
                                  "asubmit_batch-immediate"])
@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_last_batch_item_is_named_before_anything_is_uploaded(
    remote: Remote, case: str, face: str
) -> None:
    method, mode = face.split("-")
    inputs = [*MIXED[:3], BAD[case][0]]  # the bad one last: #3
    with pytest.raises(ConfigurationError) as raised:
        _submit(remote, method, inputs, batch_options={"mode": mode})
    assert raised.value.message.startswith(_said(case, "input #3"))
    assert raised.value.key == "inputs"
    assert remote.requests == []


@pytest.mark.parametrize("face", ["map", "amap"])
@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_fan_out_item_is_named(remote: Remote, case: str, face: str) -> None:
    client = remote.client()
    bad = BAD[case][0]
    if face == "map":
        with pytest.raises(ConfigurationError) as first:
            list(client.map([bad, PLAIN]))
        assert remote.requests == []  # the first input is bad: nothing was sent
        seen: list[Any] = []
        with pytest.raises(ConfigurationError) as later:
            seen.extend(client.map([PLAIN, CONV, bad], concurrency=2))
    else:
        async def collect(inputs: list[Any], into: list[Any]) -> None:
            async for outcome in client.amap(inputs, concurrency=2):
                into.append(outcome)

        with pytest.raises(ConfigurationError) as first:
            run(lambda: collect([bad, PLAIN], []))
        assert remote.requests == []
        seen = []
        with pytest.raises(ConfigurationError) as later:
            run(lambda: collect([PLAIN, CONV, bad], seen))
    assert first.value.message.startswith(_said(case, "input #0"))
    assert later.value.message.startswith(_said(case, "input #2"))
    # The items before the bad one are handed back first, in order.
    assert [o.unwrap().text for o in seen] == [
            expected_answer(remote.name, v) for v in (PLAIN, CONV)]


def test_one_conversation_given_as_the_inputs_says_how_to_send_it(remote: Remote) -> None:
    with pytest.raises(ConfigurationError, match="put its list of messages in the inputs list"
                       ) as raised:
        remote.client().submit_batch(CONV, batch_options={"mode": "native"})
    assert raised.value.message.startswith("input #0 must be a string (a prompt)")
    with pytest.raises(ConfigurationError, match=r"input #0 .* got dict"):
        list(remote.client().map(CONV))
    assert remote.requests == []


# --- prefill --------------------------------------------------------------------------------------


@pytest.mark.parametrize("remote", ["openai", "gemini"], indirect=True)
def test_a_prefill_is_refused_before_sending_where_it_is_not_continued(remote: Remote) -> None:
    client = remote.client()
    with pytest.raises(UnsupportedError) as raised:
        client.get_response(PREFILL)
    assert raised.value.parameter == "input"
    assert "prefill" in raised.value.message
    failure = client.generate(PREFILL).failure()
    assert isinstance(failure, UnsupportedError)
    with pytest.raises(UnsupportedError):
        run(lambda: llmbackend.aget_response(remote.name, remote.model, PREFILL))
    assert remote.requests == []


@pytest.mark.parametrize("remote", ["openai", "gemini"], indirect=True)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("face", ["submit_batch", "acreate_batch"])
def test_a_prefill_fails_a_batch_naming_the_item_before_anything_is_sent(
    remote: Remote, face: str, mode: str
) -> None:
    inputs = [*MIXED[:3], PREFILL]  # the prefill last: #3, custom id 'b'
    with pytest.raises(UnsupportedError) as raised:
        _submit(remote, face, inputs, batch_options={"mode": mode, "custom_ids": IDS})
    assert raised.value.message.startswith("input #3 (custom id 'b'): ")
    assert "prefill" in raised.value.message
    assert raised.value.parameter == "input"
    assert remote.requests == []


@pytest.mark.parametrize("remote", ["openai", "gemini"], indirect=True)
def test_a_prefill_in_a_fan_out_fails_at_its_place_only(remote: Remote) -> None:
    outcomes = list(remote.client().map([PLAIN, PREFILL, CONV]))
    assert isinstance(outcomes[1], Failure)
    assert isinstance(outcomes[1].failure(), UnsupportedError)
    assert [outcomes[0].unwrap().text, outcomes[2].unwrap().text] == [
        expected_answer(remote.name, PLAIN), expected_answer(remote.name, CONV)]
    assert canonical(remote.sent()) == canonical(
        [expected_body(remote.name, PLAIN), expected_body(remote.name, CONV)])


@pytest.mark.parametrize("remote", ["anthropic"], indirect=True)
def test_anthropic_sends_a_prefill_as_the_last_turn(remote: Remote) -> None:
    answer = remote.client().get_response(PREFILL)
    assert answer == "Echo: Colours as JSON?"
    (body,) = remote.sent()
    assert body["messages"] == PREFILL
    assert body["messages"][-1] == {"role": "assistant", "content": "["}


@pytest.mark.parametrize("remote", ["anthropic"], indirect=True)
@pytest.mark.parametrize("mode", MODES)
def test_anthropic_sends_a_prefill_in_a_batch(remote: Remote, mode: str) -> None:
    inputs = [PLAIN, PREFILL]
    batch = _submit(remote, "submit_batch", inputs,
                    batch_options={"mode": mode, "custom_ids": ["p", "f"]})
    assert batch.results() == ["Echo: a plain prompt", "Echo: Colours as JSON?"]
    bodies = dict(remote.native_items()) if mode == "native" else {
        ("f" if body["messages"][-1]["role"] == "assistant" else "p"): body
        for body in remote.sent()}
    assert bodies["f"]["messages"][-1] == {"role": "assistant", "content": "["}
    assert bodies["f"] == expected_body("anthropic", PREFILL)
    assert bodies["p"] == expected_body("anthropic", PLAIN)


@pytest.mark.parametrize("remote", ["anthropic"], indirect=True)
def test_anthropic_refuses_what_its_api_refuses_before_sending(remote: Remote) -> None:
    client = remote.client()
    assistant_first = [{"role": "assistant", "content": "Hello!"},
                       {"role": "user", "content": "Hi"}]
    with pytest.raises(UnsupportedError) as first:
        client.get_response(assistant_first)
    assert first.value.parameter == "input"
    with pytest.raises(UnsupportedError, match="whitespace") as spaced:
        client.get_response([{"role": "user", "content": "Hi"},
                             {"role": "assistant", "content": "Well, "}])
    assert spaced.value.parameter == "input"
    with pytest.raises(UnsupportedError) as in_batch:
        client.submit_batch([PLAIN, assistant_first],
                            batch_options={"mode": "native", "custom_ids": ["p", "q"]})
    assert in_batch.value.message.startswith("input #1 (custom id 'q'): ")
    assert remote.requests == []


@pytest.mark.parametrize("remote", ["anthropic"], indirect=True)
def test_anthropic_merges_consecutive_turns_of_one_role(remote: Remote) -> None:
    remote.client().get_response([
        {"role": "user", "content": "a"}, {"role": "user", "content": "b"},
        {"role": "assistant", "content": "c"}, Message(role="assistant", content="d"),
        {"role": "user", "content": "e"}])
    (body,) = remote.sent()
    assert body["messages"] == [{"role": "user", "content": "a\n\nb"},
                                {"role": "assistant", "content": "c\n\nd"},
                                {"role": "user", "content": "e"}]


@pytest.mark.parametrize("remote", ["openai", "gemini"], indirect=True)
def test_openai_and_gemini_send_consecutive_turns_and_a_first_assistant_turn(
    remote: Remote
) -> None:
    conversation = [{"role": "assistant", "content": "Ask me."},
                    {"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    answer = remote.client().get_response(conversation)
    assert answer == expected_answer(remote.name, conversation)
    assert remote.sent() == [expected_body(remote.name, conversation)]


#: A well-formed conversation each provider refuses, and the parameter its error names.
REFUSED_FIRST = {
    "openai": (PREFILL, "input"), "gemini": (PREFILL, "input"),
    "anthropic": ([{"role": "assistant", "content": "Hello!"},
                   {"role": "user", "content": "Hi"}], "input"),
}


@pytest.mark.parametrize("mode", ["native", "immediate"])
@pytest.mark.parametrize("face", ["submit_batch", "asubmit_batch"])
@pytest.mark.parametrize("refusal", ["provider's own", "system twice"])
def test_a_refused_first_batch_item_is_named_like_any_other(
    remote: Remote, refusal: str, face: str, mode: str
) -> None:
    if refusal == "system twice":
        first, parameter, config = CONV, "system", {"extra": {"system": "Be long."}}
    else:
        (first, parameter), config = REFUSED_FIRST[remote.name], None
    with pytest.raises(UnsupportedError) as raised:
        _submit(remote, face, [first, PLAIN], config,
                batch_options={"mode": mode, "custom_ids": ["zeta", "alpha"]})
    assert remote.requests == []  # nothing was sent, in either mode
    assert raised.value.parameter == parameter
    assert raised.value.message.startswith("input #0 (custom id 'zeta'): ")


# --- the system prompt given twice ----------------------------------------------------------------


def _system_keys(provider: str) -> list[str]:
    return ["system", "system_instruction", "systemInstruction"] if provider == "gemini" \
        else ["system"]


def test_a_system_message_beside_extra_system_is_refused_before_sending(remote: Remote) -> None:
    client = remote.client()
    for key in _system_keys(remote.name):
        config = {"extra": {key: "Be long."}}
        with pytest.raises(UnsupportedError, match="give the system prompt once") as raised:
            client.get_response(CONV, config)
        assert raised.value.parameter == "system"
        assert isinstance(client.generate(CONV, config).failure(), UnsupportedError)
        with pytest.raises(UnsupportedError):
            _top_level(remote, "aget_response", CONV, config)
    assert remote.requests == []
    # Without a system message, extra["system"] is the conversation's system prompt.
    client.get_response(TRIO, {"extra": {"system": "Be long."}})
    assert remote.sent() == [expected_body(remote.name, [
        {"role": "system", "content": "Be long."}, *TRIO])]


def test_extra_system_and_a_system_message_fail_a_fan_out_item_at_its_place(
    remote: Remote
) -> None:
    config = {"extra": {"system": "Be long."}}
    outcomes = list(remote.client().map([PLAIN, CONV, TRIO], config))
    assert isinstance(outcomes[1], Failure)
    failure = outcomes[1].failure()
    assert isinstance(failure, UnsupportedError)
    assert failure.parameter == "system"
    with_system = [{"role": "system", "content": "Be long."}, *TRIO]
    assert [outcomes[0].unwrap().text, outcomes[2].unwrap().text] == [
        expected_answer(remote.name, PLAIN), expected_answer(remote.name, with_system)]
    assert canonical(remote.sent()) == canonical([
        expected_body(remote.name, PLAIN, "Be long."), expected_body(remote.name, with_system)])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("face", ["submit_batch", "acreate_batch"])
def test_extra_system_and_a_system_message_fail_a_batch_naming_the_item(
    remote: Remote, face: str, mode: str
) -> None:
    inputs = [PLAIN, SOLO, TRIO, CONV]  # only the last has a system message
    with pytest.raises(UnsupportedError) as raised:
        _submit(remote, face, inputs, {"extra": {"system": "Be long."}},
                batch_options={"mode": mode, "custom_ids": IDS})
    assert raised.value.message.startswith("input #3 (custom id 'b'): give the system prompt once")
    assert raised.value.parameter == "system"
    assert remote.requests == []


@pytest.mark.parametrize("remote", ["openai"], indirect=True)
@pytest.mark.parametrize("face", ["submit_batch", "acreate_batch"])
def test_the_system_batch_option_meets_a_system_message_as_extra_system(
    remote: Remote, face: str
) -> None:
    with pytest.raises(UnsupportedError) as raised:
        _submit(remote, face, [PLAIN, SOLO, TRIO, CONV],
                batch_options={"mode": "native", "custom_ids": IDS, "system": "Be long."})
    assert raised.value.message.startswith("input #3 (custom id 'b'): give the system prompt once")
    assert raised.value.parameter == "system"
    assert remote.requests == []


@pytest.mark.parametrize("remote", ["openai"], indirect=True)
def test_the_system_batch_option_is_every_items_instructions(remote: Remote) -> None:
    inputs = [PLAIN, SOLO, TRIO]
    batch = _submit(remote, "submit_batch", inputs,
                    batch_options={"mode": "native", "system": "Be long."})
    assert batch.results() == [expected_answer("openai", value) for value in inputs]
    assert [body for _, body in remote.native_items()] == [
        expected_body("openai", PLAIN, "Be long."),
        expected_body("openai", [{"role": "system", "content": "Be long."}, *SOLO]),
        expected_body("openai", [{"role": "system", "content": "Be long."}, *TRIO])]


@pytest.mark.parametrize("remote", ["openai"], indirect=True)
def test_an_immediate_batch_takes_no_system_option(remote: Remote) -> None:
    # docs/batches.md: immediate batches take concurrency, custom_ids, display_name, progress.
    with pytest.raises(ConfigurationError, match="unknown batch option 'system'"):
        remote.client().submit_batch([CONV], batch_options={"mode": "immediate",
                                                            "system": "Be long."})
    assert remote.requests == []


@pytest.mark.parametrize("remote", ["anthropic", "gemini"], indirect=True)
def test_a_system_batch_option_is_openais_only(remote: Remote) -> None:
    with pytest.raises(ConfigurationError, match="unknown batch option 'system'"):
        remote.client().submit_batch([CONV], batch_options={"mode": "native",
                                                            "system": "Be long."})
    assert remote.requests == []


# --- local: the tiny model ------------------------------------------------------------------------

GREEDY = {"temperature": 0, "max_tokens": 8}
LOCAL_CONV = [{"role": "system", "content": "You are terse."},
              {"role": "user", "content": "Name a colour."}]
LOCAL_TRIO = [Message(role="user", content="Hello"), Message(role="assistant", content="Hi!"),
              Message(role="user", content="Tell me a story")]


@pytest.fixture(scope="module")
def local(tiny_model: Path) -> Iterator[llmbackend.Client]:
    client = llmbackend.client("transformers", str(tiny_model))  # plain prompts sent raw
    yield client
    client.close()


@pytest.mark.runtime
def test_local_message_list_is_the_same_as_extra_conversation(
    local: llmbackend.Client, tiny_model: Path
) -> None:
    as_input = local.generate(LOCAL_CONV, GREEDY).unwrap()
    # A conversation ending with the user's turn defines the request: the prompt is not used.
    as_extra = local.generate("a label, not sent", {**GREEDY, "extra": {
        "conversation": LOCAL_CONV}}).unwrap()
    assert as_input.raw["prompt"] == as_extra.raw["prompt"]
    assert as_input.raw["token_ids"] == as_extra.raw["token_ids"]
    assert as_input.text == as_extra.text
    assert local.get_response(LOCAL_CONV, GREEDY) == as_extra.text
    top_level = llmbackend.get_response("transformers", str(tiny_model), LOCAL_CONV, GREEDY)
    assert top_level == as_extra.text
    assert run(lambda: local.aget_response(LOCAL_CONV, GREEDY)) == as_extra.text


@pytest.mark.runtime
def test_local_fan_out_and_batch_of_mixed_inputs_answer_in_order(
    local: llmbackend.Client
) -> None:
    inputs: list[Any] = ["Hello", LOCAL_CONV, LOCAL_TRIO, "Why is the sky blue?"]
    one_by_one = [local.get_response(value, GREEDY) for value in inputs]
    assert [o.unwrap().text for o in local.map(inputs, GREEDY, concurrency=2)] == one_by_one
    batch = local.submit_batch(inputs, GREEDY, batch_options={"custom_ids": IDS})
    assert batch.custom_ids == tuple(IDS)
    assert batch.results() == one_by_one
    bad: list[Any] = ["Hello", [{"role": "tool", "content": "x"}]]
    with pytest.raises(ConfigurationError, match="message #0 of input #1 has the role 'tool'"):
        local.submit_batch(bad, GREEDY)
    with pytest.raises(ConfigurationError, match="message #0 of input #1 has the role 'tool'"):
        list(local.map(bad, GREEDY))


@pytest.mark.runtime
def test_local_conversations_are_given_once_and_prefills_are_continued(
    local: llmbackend.Client
) -> None:
    twice = {**GREEDY, "extra": {"conversation": LOCAL_CONV}}
    with pytest.raises(ConfigurationError, match="input #1 is a list of messages and "
                       r"config.extra\['conversation'\] gives a conversation too"):
        local.submit_batch(["Hello", LOCAL_CONV], twice)
    with pytest.raises(ConfigurationError, match="give the conversation once"):
        local.get_response(LOCAL_CONV, twice)
    prefill = [*LOCAL_TRIO, Message(role="assistant", content="Once upon a")]
    alone = local.generate(prefill, GREEDY).unwrap()
    assert alone.raw["prompt"].endswith("<|im_start|>assistant\nOnce upon a")
    assert local.submit_batch([LOCAL_CONV, prefill], GREEDY).results()[1] == alone.text
