"""Hostile and careless input: each case is our typed error, raised before anything is sent or
uploaded, on every remote provider, sync and async, library and command line (issue 14).

Values JSON cannot carry (NaN, infinity, a set, an object, a lone surrogate) in a config's
``extra`` or a prompt; schemas that could never be checked (a bad ``pattern``, a ``$ref`` loop,
3,000 levels deep, ``"$schema": []``); Pydantic models without a schema; hand-edited saved
handles; a mapping given as the inputs.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import llmbackend
from llmbackend import ConfigurationError, InvalidSchemaError, StructuredOutput
from llmbackend.schemas import MAX_DEPTH, json_problem
from tests.anthropic_emulator import API_KEY as ANTHROPIC_KEY
from tests.anthropic_emulator import AnthropicEmulator, MessageBatchPlan
from tests.emulator import API_KEY, BatchPlan, OpenAIEmulator
from tests.gemini_emulator import API_KEY as GEMINI_KEY
from tests.gemini_emulator import GeminiBatchPlan, GeminiEmulator

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5",
          "gemini": "gemini-2.5-flash"}
Emulator = OpenAIEmulator | AnthropicEmulator | GeminiEmulator


def nested(depth: int, leaf: Any = 1) -> Any:
    """``leaf`` inside ``depth`` lists."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def deep_schema(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth - 1):
        schema = {"type": "array", "items": schema}
    return schema


@pytest.fixture(params=["openai", "anthropic", "gemini"])
def remote(request: pytest.FixtureRequest) -> tuple[str, Emulator]:
    """Each remote provider with its emulator, wired in through the environment."""
    name = request.param
    fixture = {"openai": "openai_env", "anthropic": "anthropic_env",
               "gemini": "gemini_env"}[name]
    emulator: Emulator = request.getfixturevalue(fixture)
    return name, emulator


# Every face that sends a config: what it is called with (provider, model, inputs, config).
def _get_response(p: str, m: str, inputs: list[str], config: Any) -> object:
    return llmbackend.get_response(p, m, inputs[0], config)


def _aget_response(p: str, m: str, inputs: list[str], config: Any) -> object:
    return asyncio.run(llmbackend.aget_response(p, m, inputs[0], config))


def _map(p: str, m: str, inputs: list[str], config: Any) -> object:
    return list(llmbackend.client(p, m).map(inputs, config))


def _amap(p: str, m: str, inputs: list[str], config: Any) -> object:
    async def run() -> list[object]:
        return [r async for r in llmbackend.client(p, m).amap(inputs, config)]

    return asyncio.run(run())


def _native(p: str, m: str, inputs: list[str], config: Any) -> object:
    return llmbackend.create_batch(inputs, p, m, config, batch_options={"mode": "native"})


def _immediate(p: str, m: str, inputs: list[str], config: Any) -> object:
    return llmbackend.create_batch(inputs, p, m, config, batch_options={"mode": "immediate"})


def _anative(p: str, m: str, inputs: list[str], config: Any) -> object:
    return asyncio.run(llmbackend.acreate_batch(inputs, p, m, config,
                                                batch_options={"mode": "native"}))


def _aimmediate(p: str, m: str, inputs: list[str], config: Any) -> object:
    return asyncio.run(llmbackend.acreate_batch(inputs, p, m, config,
                                                batch_options={"mode": "immediate"}))


FACES = {"get_response": _get_response, "aget_response": _aget_response, "map": _map,
         "amap": _amap, "create_batch native": _native, "create_batch immediate": _immediate,
         "acreate_batch native": _anative, "acreate_batch immediate": _aimmediate}


class Opaque:
    pass


BAD_EXTRAS: dict[str, tuple[Any, str]] = {
    "nan": (math.nan, r"extra\.x is nan: JSON has no NaN"),
    "infinity": (-math.inf, r"extra\.x is -inf: JSON has no NaN"),
    "a set": ({"a", "b"}, r"extra\.x is of type set, which JSON cannot carry"),
    "an object": (Opaque(), r"extra\.x is of type Opaque"),
    "nested nan": ({"a": [1, math.inf]}, r"extra\.x\.a\[1\] is inf"),
    "a lone surrogate": ("Be brief \ud800", r"extra\.x is a string that holds a lone "
                         r"surrogate \('\\ud800' at index 9\)"),
    "a key with a lone surrogate": ({"\udc80": 1}, r"key '\\udc80', which holds a lone"),
    "too deep": (nested(MAX_DEPTH + 5), f"nested more than {MAX_DEPTH} levels deep"),
}


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("bad", BAD_EXTRAS)
def test_an_extra_json_cannot_carry_is_refused_before_sending_on_openai(
    openai_env: OpenAIEmulator, face: str, bad: str
) -> None:
    value, says = BAD_EXTRAS[bad]
    openai_env.batch_plan = BatchPlan(finish_after=1)
    with pytest.raises(ConfigurationError, match=says) as raised:
        FACES[face]("openai", MODELS["openai"], ["a", "b"], {"extra": {"x": value}})
    assert raised.value.key == "extra"
    assert openai_env.requests == []  # nothing sent, nothing uploaded
    str(raised.value).encode("utf-8")  # the message itself can be printed


@pytest.mark.parametrize("face", FACES)
def test_an_extra_json_cannot_carry_is_refused_on_every_remote_provider(
    remote: tuple[str, Emulator], face: str
) -> None:
    name, emulator = remote
    config = llmbackend.GenerationConfig(extra={"system": "\ud800", "temperature_x": math.nan})
    with pytest.raises(ConfigurationError, match="config 'extra' must be JSON data"):
        FACES[face](name, MODELS[name], ["a", "b"], config)
    with pytest.raises(ConfigurationError, match="JSON has no NaN"):
        FACES[face](name, MODELS[name], ["a"], {"extra": {"seed_x": math.nan}})
    assert emulator.requests == []


@pytest.mark.parametrize("face", FACES)
def test_a_prompt_with_a_lone_surrogate_is_refused_before_sending(
    remote: tuple[str, Emulator], face: str
) -> None:
    name, emulator = remote
    # A batch reads all its inputs first: the good prompt before the bad one is not sent either.
    inputs = ["fine", "bad \udfff"] if "batch" in face else ["\ud800 hi"]
    with pytest.raises(ConfigurationError, match=r"holds a lone surrogate \('\\u"):
        FACES[face](name, MODELS[name], inputs, None)
    assert emulator.requests == []


@pytest.mark.parametrize("mode", ["native", "immediate"])
@pytest.mark.parametrize("option", ["display_name", "custom_ids"])
def test_a_batch_option_with_a_lone_surrogate_is_refused_before_uploading(
    remote: tuple[str, Emulator], mode: str, option: str
) -> None:
    name, emulator = remote
    value: Any = "night \ud800" if option == "display_name" else ["a", "\udfff"]
    with pytest.raises(ConfigurationError, match=f"batch option '{option}' holds a lone "
                       "surrogate|custom id #1 '\\\\udfff' is not valid"):
        llmbackend.client(name, MODELS[name]).submit_batch(
            ["x", "y"], batch_options={"mode": mode, option: value})
    assert emulator.requests == []


def test_an_openai_batch_system_with_a_lone_surrogate_is_refused(openai_env: OpenAIEmulator
                                                                  ) -> None:
    with pytest.raises(ConfigurationError, match="batch option 'system' holds a lone"):
        llmbackend.create_batch(["x"], "openai", "gpt-4o-mini",
                                batch_options={"system": "\ud800"})
    assert openai_env.requests == []


def test_local_providers_still_take_python_values_in_extra() -> None:
    # Local runtimes get extra as Python values (a logits processor, a stopping criterion):
    # only what is sent over the network must be JSON.
    config = llmbackend.GenerationConfig(extra={"logits_processor": Opaque()})
    assert isinstance(config.extra["logits_processor"], Opaque)


def test_json_problem_walks_any_input_without_recursing() -> None:
    looped: dict[str, Any] = {}
    looped["self"] = looped
    assert json_problem(looped) == ("$" + ".self" * MAX_DEPTH,
                                    f"nested more than {MAX_DEPTH} levels deep")
    assert json_problem(nested(100_000)) is not None
    assert json_problem({"a": [1, 2.5, "x", None, True, {"b": ()}]}) is None
    assert json_problem({1: "a"}) == ("$", "an object with the key 1: JSON keys are strings")


# --- schemas --------------------------------------------------------------------------------------

BAD_SCHEMAS: dict[str, tuple[dict[str, Any], str, str]] = {
    "a bad pattern": ({"type": "string", "pattern": "("}, r"the pattern '\(' at \$\.pattern is "
                      r"not a regular expression", "$.pattern"),
    "a bad pattern deep down": ({"type": "object", "properties": {"code": {
        "type": "string", "pattern": "[a-"}}}, r"at \$\.properties\.code\.pattern",
        "$.properties.code.pattern"),
    "a bad patternProperties key": ({"type": "object", "patternProperties": {"*x": {}}},
                                    r"the pattern '\*x' at \$\.patternProperties",
                                    "$.patternProperties"),
    "a $ref to itself": ({"$ref": "#"}, "loops back to itself without moving into the answer",
                         "$"),
    "a $ref loop": ({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref":
                    "#/$defs/a"}]}}, "$ref": "#/$defs/a"}, "loops back to itself",
                    "$.$defs.b.allOf[0]"),
    "an anyOf loop": ({"anyOf": [{"type": "string"}, {"$ref": "#"}]}, "loops back", "$.anyOf[1]"),
    "3,000 levels deep": (deep_schema(3000), f"nested more than {MAX_DEPTH} levels deep",
                          "$" + ".items" * MAX_DEPTH),
    "$schema is a list": ({"$schema": []}, r"'\$schema' must be a string", "$['$schema']"),
    "a nan": ({"type": "number", "maximum": math.nan}, r"\$\.maximum is nan", "$.maximum"),
    "a lone surrogate": ({"type": "string", "description": "\ud800"}, "lone surrogate",
                         "$.description"),
    "a set": ({"type": "string", "enum": {"a", "b"}}, "of type set", "$.enum"),
    "an unknown anchor": ({"$ref": "#nowhere"}, "does not resolve inside the schema", "$"),
    "a dangling pointer": ({"$ref": "#/$defs/missing"}, "does not resolve", "$"),
}


@pytest.mark.parametrize("case", BAD_SCHEMAS)
def test_a_schema_that_could_never_be_checked_is_refused_when_made(case: str) -> None:
    schema, says, path = BAD_SCHEMAS[case]
    with pytest.raises(InvalidSchemaError, match=says) as raised:
        StructuredOutput(schema=schema)
    assert (raised.value.key, raised.value.path) == ("schema", path)
    str(raised.value).encode("utf-8")
    assert len(str(raised.value)) < 500  # a 3,000-deep path is not spelled out


def test_recursive_schemas_that_move_into_the_answer_are_fine() -> None:
    # A tree ($ref to the root under items), a linked list through $defs, an $anchor: legal
    # JSON Schema that providers accept, and answers are checked against them.
    tree = StructuredOutput(schema={"type": "object", "properties": {
        "name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#"}}},
        "required": ["name"]})
    linked = StructuredOutput(schema={"$defs": {"node": {"type": "object", "properties": {
        "next": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/node"}]}}}},
        "$ref": "#/$defs/node"})
    anchored = StructuredOutput(schema={"$defs": {"s": {"$anchor": "word", "type": "string",
                                                         "pattern": "^[a-z]+$"}},
                                        "type": "array", "items": {"$ref": "#word"}})
    from llmbackend.convert import validate_output

    assert validate_output(tree, '{"name": "a", "children": [{"name": "b", "children": []}]}',
                           "openai").unwrap()["children"][0]["name"] == "b"
    assert validate_output(linked, '{"next": {"next": null}}', "openai").unwrap()
    assert validate_output(anchored, '["ab", "c"]', "openai").unwrap() == ["ab", "c"]
    mismatch = validate_output(anchored, '["A"]', "openai").failure()
    assert isinstance(mismatch, llmbackend.SchemaValidationError) and mismatch.path == "$[0]"
    StructuredOutput(schema=deep_schema(MAX_DEPTH))  # as deep as allowed


def test_a_bad_pattern_is_refused_before_get_response_sends(openai_env: OpenAIEmulator) -> None:
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "("}}}
    with pytest.raises(InvalidSchemaError, match="pattern"):
        llmbackend.get_response("openai", "gpt-4o-mini", "hi",
                                schema=StructuredOutput(schema=schema))
    assert openai_env.requests == []


class WithCallable(BaseModel):
    name: str
    callback: Callable[[int], int]


class WithUndefined(BaseModel):
    name: str
    child: Undefined  # type: ignore[name-defined]  # noqa: F821


@pytest.mark.parametrize(("model", "says"), [
    (WithCallable, "pydantic_model=WithCallable cannot be turned into a JSON Schema: Cannot "
     "generate a JsonSchema for core_schema.CallableSchema"),
    (WithUndefined, "pydantic_model=WithUndefined cannot be turned into a JSON Schema: "
     "`WithUndefined` is not fully defined"),
])
def test_a_pydantic_model_without_a_schema_is_our_error(model: type[BaseModel], says: str
                                                         ) -> None:
    with pytest.raises(InvalidSchemaError) as raised:
        StructuredOutput(pydantic_model=model)
    assert str(raised.value).startswith(says)
    assert raised.value.key == "pydantic_model"


# --- inputs that are not a sequence of prompts ----------------------------------------------------


@pytest.mark.parametrize(("inputs", "says"), [
    ({"a": 1}, "got dict: a mapping, whose keys would become the prompts"),
    ({"first": "Say hi"}, "got dict: a mapping"),
    ({"Say hi", "Say bye"}, "got set: a set, which has no order"),
    ("Say hi", "got str"),
])
@pytest.mark.parametrize("face", ["create_batch", "acreate_batch", "map", "amap",
                                  "immediate"])
def test_a_mapping_is_not_a_list_of_inputs(openai_env: OpenAIEmulator, inputs: Any,
                                            says: str, face: str) -> None:
    client = llmbackend.client("openai", "gpt-4o-mini")

    async def amap() -> list[object]:
        return [r async for r in client.amap(inputs)]

    calls: dict[str, Callable[[], object]] = {
        "create_batch": lambda: llmbackend.create_batch(inputs, "openai", "gpt-4o-mini"),
        "acreate_batch": lambda: asyncio.run(llmbackend.acreate_batch(inputs, "openai",
                                                                      "gpt-4o-mini")),
        "map": lambda: list(client.map(inputs)),
        "amap": lambda: asyncio.run(amap()),
        "immediate": lambda: client.submit_batch(inputs, batch_options={"mode": "immediate"}),
    }
    with pytest.raises(ConfigurationError, match=says) as raised:
        calls[face]()
    assert raised.value.key == "inputs"
    assert openai_env.requests == []


# --- hand-edited saved handles --------------------------------------------------------------------

PLANS: dict[str, Callable[[], Any]] = {
    "openai": lambda: BatchPlan(finish_after=1),
    "anthropic": lambda: MessageBatchPlan(finish_after=1),
    "gemini": lambda: GeminiBatchPlan(finish_after=1),
}

SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"],
          "additionalProperties": False}


def _edit_parts(change: Callable[[list[dict[str, Any]]], None]) -> Callable[[dict[str, Any]],
                                                                          None]:
    return lambda saved: change(saved["parts"])


EDITS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "duplicate custom ids": (_edit_parts(lambda parts: parts[0].__setitem__(
        "custom_ids", ["same", "same"])), "holds 'same' twice"),
    "a custom id in two parts": (_edit_parts(lambda parts: parts.append(
        {**parts[0], "id": parts[0]["id"] + "x"})), "together holds 'request-0' twice"),
    "nested lists in custom ids": (_edit_parts(lambda parts: parts[0].__setitem__(
        "custom_ids", [["request-0"], "request-1"])), r"'custom_ids'\[0\] must be a non-empty "
        r"string, got \['request-0'\]"),
    "a number as custom id": (_edit_parts(lambda parts: parts[0].__setitem__(
        "custom_ids", [0, 1])), r"'custom_ids'\[0\] must be a non-empty string, got 0"),
    "order with a number": (lambda saved: saved.__setitem__("order", [1, "x"]),
                            r"'order'\[0\] must be a non-empty string, got 1"),
    "order with a repeat": (lambda saved: saved.__setitem__("order", ["request-0"] * 2),
                            "'order' holds 'request-0' twice"),
    "order naming other ids": (lambda saved: saved.__setitem__("order", ["x", "y"]),
                               "'order' must name each of the parts' custom ids once"),
    "$schema: [] in the schema": (lambda saved: saved["schema"]["schema"].__setitem__(
        "$schema", []), r"'schema' is not a valid JSON schema: the schema's '\$schema' must "
        "be a string"),
    "a bad pattern in the schema": (lambda saved: saved["schema"]["schema"]["properties"][
        "title"].__setitem__("pattern", "("), "not a valid JSON schema: the pattern"),
    "a part id that is a number": (_edit_parts(lambda parts: parts[0].__setitem__("id", 7)),
                                   "no parts with ids"),
    "duplicate part ids": (_edit_parts(lambda parts: parts.append(
        {**parts[0], "custom_ids": None})), "holds .* twice"),
    "a model that is a list": (lambda saved: saved.__setitem__("model", ["m"]),
                               "'model' must be a string"),
    "options with nan": (lambda saved: saved.__setitem__("options", {"x": math.nan}),
                         r"options\.x is nan"),
}


@pytest.mark.parametrize("edit", EDITS)
def test_a_hand_edited_handle_is_a_configuration_error_on_every_provider(
    remote: tuple[str, Emulator], edit: str
) -> None:
    name, emulator = remote
    emulator.batch_plan = PLANS[name]()
    batch = llmbackend.client(name, MODELS[name]).submit_batch(
        ["a", "b"], schema=StructuredOutput(schema=SCHEMA), batch_options={"mode": "native"})
    saved = json.loads(json.dumps(batch.to_dict()))
    change, says = EDITS[edit]
    change(saved)
    requests = len(emulator.requests)
    with pytest.raises(ConfigurationError, match=says) as raised:
        llmbackend.restore_batch(saved)
    assert type(raised.value) is ConfigurationError and raised.value.key == "batch"
    with pytest.raises(ConfigurationError, match=says):
        asyncio.run(llmbackend.arestore_batch(saved))
    assert len(emulator.requests) == requests  # said before any request
    assert llmbackend.restore_batch(batch.to_dict()).id == batch.id  # the unedited one restores


# --- the command line ---------------------------------------------------------------------------

KEYS = {"openai": ("OPENAI_API_KEY", API_KEY, "OPENAI_BASE_URL"),
        "anthropic": ("ANTHROPIC_API_KEY", ANTHROPIC_KEY, "ANTHROPIC_BASE_URL"),
        "gemini": ("GOOGLE_API_KEY", GEMINI_KEY, "GOOGLE_GEMINI_BASE_URL")}


def cli(env: dict[str, str], *args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "llmbackend", *args], check=False, env=env,
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture
def cli_env(remote: tuple[str, Emulator], tmp_path: Path) -> tuple[str, Emulator, dict[str, str]]:
    name, emulator = remote
    key_var, key, url_var = KEYS[name]
    return name, emulator, {**os.environ, key_var: key, url_var: emulator.base_url,
                            "LLMBACKEND_STATE_DIR": str(tmp_path / "state")}


def _usage_error(done: subprocess.CompletedProcess[bytes], *fragments: str) -> None:
    stderr = done.stderr.decode("utf-8")
    assert done.returncode == 2, stderr
    (line,) = stderr.strip().splitlines()
    assert line.startswith("llmbackend: error: ")
    for fragment in fragments:
        assert fragment in line, line


@pytest.mark.parametrize("command", ["run", "batch submit"])
def test_the_command_line_refuses_an_extra_json_cannot_carry(
    cli_env: tuple[str, Emulator, dict[str, str]], tmp_path: Path, command: str
) -> None:
    name, emulator, env = cli_env
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a\nb\n")
    where = ["Say hi"] if command == "run" else [str(prompts)]
    for value, says in (("NaN", "extra.x is nan"), ("Infinity", "extra.x is inf"),
                        ('[1, {"a": -Infinity}]', "extra.x[1].a is -inf")):
        done = cli(env, *command.split(), "-p", name, "-m", MODELS[name], "-x", f"x={value}",
                   *where)
        _usage_error(done, "config 'extra' must be JSON data", says)
    assert emulator.requests == []


def test_the_command_line_refuses_a_prompt_that_is_not_text(
    cli_env: tuple[str, Emulator, dict[str, str]], tmp_path: Path
) -> None:
    name, emulator, env = cli_env
    lines = tmp_path / "prompts.jsonl"
    lines.write_text('{"prompt": "fine"}\n{"prompt": "bad \\ud800"}\n')
    done = cli(env, "batch", "submit", "-p", name, "-m", MODELS[name], str(lines))
    _usage_error(done, f"{lines}:2: the prompt holds a lone surrogate ('\\ud800' at index 4)")
    ids = tmp_path / "ids.jsonl"
    ids.write_text('{"prompt": "fine", "custom_id": "\\udc00"}\n')
    done = cli(env, "batch", "submit", "-p", name, "-m", MODELS[name], str(ids))
    _usage_error(done, f"{ids}:1: the custom_id holds a lone surrogate")
    # A prompt or system text given as an argument with a byte that is not UTF-8: Python reads
    # it as a lone surrogate.
    done = cli(env, "run", "-p", name, "-m", MODELS[name], b"bad \xff")
    _usage_error(done, "input holds a lone surrogate ('\\udcff' at index 4)")
    done = cli(env, "run", "-p", name, "-m", MODELS[name], "--system", b"\xfe", "hi")
    _usage_error(done, "config 'extra' must be JSON data", "lone surrogate ('\\udcfe'")
    assert emulator.requests == []


def test_the_command_line_refuses_a_schema_that_could_never_be_checked(
    openai_env: OpenAIEmulator, tmp_path: Path
) -> None:
    env = {**os.environ, "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": openai_env.base_url,
           "LLMBACKEND_STATE_DIR": str(tmp_path / "state")}
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a\n")
    for schema, says in (({"type": "string", "pattern": "("}, "the pattern '(' at $.pattern"),
                         ({"$ref": "#"}, "loops back to itself"),
                         (deep_schema(500), "levels deep"),
                         ({"$schema": []}, "'$schema' must be a string")):
        path = tmp_path / "schema.json"
        path.write_text(json.dumps(schema))
        for command in (["run", "hi"], ["batch", "submit", str(prompts)]):
            done = cli(env, *command[:-1], "-p", "openai", "-m", "gpt-4o-mini", "--schema",
                       str(path), command[-1])
            _usage_error(done, says)
    assert openai_env.requests == []


def test_the_command_line_refuses_json_too_deep_to_read(openai_env: OpenAIEmulator,
                                                        tmp_path: Path) -> None:
    # 3,000 levels: Python's json module itself gives up (RecursionError), not just our check.
    env = {**os.environ, "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": openai_env.base_url,
           "LLMBACKEND_STATE_DIR": str(tmp_path / "state")}
    deep = "[" * 3000 + "]" * 3000
    schema = tmp_path / "schema.json"
    schema.write_text('{"type": "array", "items": ' * 3000 + "{}" + "}" * 3000)
    lines = tmp_path / "prompts.jsonl"
    lines.write_text(f'{{"prompt": "a", "x": {deep}}}\n')
    done = cli(env, "run", "-p", "openai", "-m", "gpt-4o-mini", "--schema", str(schema), "hi")
    _usage_error(done, "the schema is JSON nested too deeply to read")
    done = cli(env, "batch", "submit", "-p", "openai", "-m", "gpt-4o-mini", str(lines))
    _usage_error(done, f"{lines}:1: the JSON is nested too deeply to read")
    done = cli(env, "run", "-p", "openai", "-m", "gpt-4o-mini", "-x", f"x={deep}", "hi")
    assert done.returncode == 2 and b"nested too deeply" in done.stderr, done.stderr
    assert openai_env.requests == []
