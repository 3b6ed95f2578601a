"""All Hypothesis strategies of the test suite."""

from __future__ import annotations

import keyword
from typing import Any, Literal, Optional

from hypothesis import strategies as st

from llmbackend.types import GenerationConfig

# Answers are JSON, which has no NaN or infinity: instances built from type hints must not either.
st.register_type_strategy(float, st.floats(allow_nan=False, allow_infinity=False))

# --- JSON -----------------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                                        allow_infinity=False) \
    | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)

# --- config ---------------------------------------------------------------------------------------

#: ``extra`` keys the Responses API accepts, with valid values (passed through by the builder).
openai_passthrough = st.fixed_dictionaries({}, optional={
    "store": st.booleans(),
    "metadata": st.dictionaries(st.text("abcdef", min_size=1, max_size=8),
                                st.text(max_size=16), max_size=3),
    "safety_identifier": st.text("abcdefghij-", min_size=1, max_size=20),
    "prompt_cache_key": st.text("abcdef", min_size=1, max_size=10),
    "truncation": st.sampled_from(["auto", "disabled"]),
    "parallel_tool_calls": st.booleans(),
    "top_logprobs": st.integers(0, 20),
    "system": st.text(max_size=40),
})

temperatures = st.none() | st.floats(0.0, 2.0)
top_ps = st.none() | st.floats(0.0, 1.0)


def configs(*, max_tokens: st.SearchStrategy[int | None] | None = None,
            seeds: st.SearchStrategy[int | None] | None = None,
            extra: st.SearchStrategy[dict[str, Any]] = openai_passthrough,
            temperatures: st.SearchStrategy[float | None] = temperatures,
            ) -> st.SearchStrategy[GenerationConfig]:
    return st.builds(
        GenerationConfig,
        temperature=temperatures,
        top_p=top_ps,
        max_tokens=max_tokens if max_tokens is not None else st.none() | st.integers(1, 100_000),
        seed=seeds if seeds is not None else st.none() | st.integers(),
        extra=extra,
    )


#: Configs the Responses API can honour as they are.
openai_configs = configs(max_tokens=st.none() | st.integers(16, 100_000), seeds=st.none())
#: Configs the Messages API can honour as they are (temperature 0 to 1, no seed); ``extra`` keys
#: are passthrough fields both APIs share.
anthropic_configs = configs(seeds=st.none(), temperatures=st.none() | st.floats(0.0, 1.0),
                            extra=st.fixed_dictionaries({}, optional={
                                "metadata": st.just({"user_id": "u-1"})}))

prompts = st.text(max_size=200)
models = st.sampled_from(["gpt-4o-mini", "gpt-4o", "gpt-5", "o3-mini", "my-local-model"])

# --- schemas --------------------------------------------------------------------------------------

names = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10).filter(
    lambda n: not keyword.iskeyword(n) and not n.startswith("_") and n.isidentifier()
)

_leaf_schemas = st.one_of(
    st.sampled_from([{"type": t} for t in ("string", "integer", "number", "boolean")]),
    st.lists(st.text("abc", min_size=1, max_size=3), min_size=1, max_size=3, unique=True).map(
        lambda values: {"type": "string", "enum": values}),
)


def _object_of(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        properties = draw(st.dictionaries(names, children, min_size=1, max_size=4))
        required = [n for n in properties if draw(st.booleans())]
        node: dict[str, Any] = {"type": "object", "properties": properties,
                                "required": required}
        if draw(st.booleans()):
            node["additionalProperties"] = False
        return node

    return build()


#: Object schemas with nested objects, arrays and enums, strict-compatible or not.
json_schemas = _object_of(st.recursive(
    _leaf_schemas,
    lambda children: _object_of(children) | children.map(lambda s: {"type": "array", "items": s}),
    max_leaves=8,
))


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with every object closed and fully required (OpenAI's strict rules)."""
    out = dict(schema)
    if out.get("type") == "object":
        out["properties"] = {k: _closed(v) for k, v in out["properties"].items()}
        out["required"] = list(out["properties"])
        out["additionalProperties"] = False
    if out.get("type") == "array":
        out["items"] = _closed(out["items"])
    return out


strict_json_schemas = json_schemas.map(_closed)

# --- Pydantic models ------------------------------------------------------------------------------

_field_types: list[Any] = [str, int, float, bool, list[str], Optional[int],  # noqa: UP045
                           Literal["red", "green"], dict[str, int]]


@st.composite
def pydantic_models(draw: st.DrawFn, depth: int = 2) -> type[Any]:
    """A random Pydantic model class: scalar, optional, literal, list, dict and nested fields,
    some with defaults and descriptions."""
    from pydantic import BaseModel, Field, create_model

    fields: dict[str, Any] = {}
    field_names = names.filter(lambda n: not hasattr(BaseModel, n))
    for name in draw(st.lists(field_names, min_size=1, max_size=5, unique=True)):
        choices = _field_types + ([draw(pydantic_models(depth=depth - 1))] if depth > 0 else [])
        annotation = draw(st.sampled_from(choices))
        description = draw(st.none() | st.text("abc ", min_size=1, max_size=10))
        if draw(st.booleans()) and annotation in (str, int, bool):
            default = {str: "d", int: 0, bool: False}[annotation]
            fields[name] = (annotation, Field(default, description=description))
        else:
            fields[name] = (annotation, Field(description=description))
    return create_model(draw(names).capitalize() or "Model", **fields)  # type: ignore[no-any-return,call-overload]


# --- Responses API bodies -------------------------------------------------------------------------

_text_parts = st.builds(lambda text: {"type": "output_text", "text": text, "annotations": [],
                                      "logprobs": []}, st.text(max_size=30))
_messages = st.builds(
    lambda parts: {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
                   "content": parts},
    st.lists(_text_parts, max_size=3),
)
_reasoning = st.just({"id": "rs_1", "type": "reasoning",
                      "summary": [{"type": "summary_text", "text": "thinking..."}]})
_web_search = st.just({"id": "ws_1", "type": "web_search_call", "status": "completed",
                       "action": {"type": "search", "query": "q"}})

#: ``output`` lists without refusals or tool calls, as a completed response carries them.
text_outputs = st.lists(_messages | _reasoning, max_size=4)


def expected_text(output: list[dict[str, Any]]) -> str:
    """The answer a reader of the Responses docs expects: every output_text, in order."""
    return "".join(part["text"] for item in output if item["type"] == "message"
                   for part in item["content"] if part["type"] == "output_text")


response_bodies = st.builds(
    lambda output, rid, tokens: {
        "id": rid, "object": "response", "created_at": 1, "status": "completed",
        "model": "gpt-4o-mini", "output": output, "error": None, "incomplete_details": None,
        "usage": {"input_tokens": tokens[0], "output_tokens": tokens[1],
                  "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": sum(tokens)},
        "parallel_tool_calls": True, "tools": [], "tool_choice": "auto", "text": {},
        "temperature": 1.0, "top_p": 1.0, "metadata": {},
    },
    text_outputs,
    st.text("abcdef0123456789", min_size=1, max_size=12).map(lambda s: "resp_" + s),
    st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)),
)

http_statuses = st.integers(100, 599)
