"""The one check of an input (a prompt or a list of messages), and the system split."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmbackend.errors import ConfigurationError
from llmbackend.messages import ROLES, Message, check_input, is_messages, split_system

texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
messages = st.lists(st.builds(lambda role, content: {"role": role, "content": content},
                              st.sampled_from(ROLES), texts), min_size=1, max_size=8).filter(
    lambda items: any(item["role"] != "system" for item in items))


def test_a_prompt_is_returned_as_it_is() -> None:
    assert check_input("hello") == "hello"
    assert not is_messages("hello")


def test_dicts_and_messages_become_message_values() -> None:
    checked = check_input([{"role": "system", "content": "Be brief."},
                           Message("user", "Hi"), {"role": "assistant", "content": "Hello"},
                           {"role": "user", "content": "Bye"}])
    assert checked == (Message("system", "Be brief."), Message("user", "Hi"),
                       Message("assistant", "Hello"), Message("user", "Bye"))
    assert is_messages(checked)
    assert Message("user", "Hi").to_dict() == {"role": "user", "content": "Hi"}


@given(messages)
def test_any_valid_list_keeps_its_roles_and_contents_in_order(items: list[dict[str, str]]
                                                             ) -> None:
    checked = check_input(items)
    assert isinstance(checked, tuple)
    assert [message.to_dict() for message in checked] == items
    system, turns = split_system(checked)
    assert system == tuple(item["content"] for item in items if item["role"] == "system")
    assert [message.to_dict() for message in turns] == [
        item for item in items if item["role"] != "system"]


@pytest.mark.parametrize(("value", "problem"), [
    ([], "empty list of messages"),
    ([{"role": "system", "content": "x"}], "only system messages"),
    ([{"role": "tool", "content": "x"}], "has the role 'tool'"),
    ([{"role": "user", "content": 3}], "string 'content', got int"),
    ([{"role": "user", "content": ["a"]}], "string 'content', got list"),
    ([{"role": "user", "content": "x", "name": "bob"}], "unknown field(s) 'name'"),
    ([{"content": "x"}], "has the role None"),
    (["hello"], "must be a dict"),
    ([("user", "x")], "must be a dict"),
    ({"role": "user", "content": "x"}, "must be a string (the prompt) or a list of messages"),
    (Message("user", "x"), "must be a string (the prompt) or a list of messages"),
    (b"bytes", "got bytes"),
    (3, "got int"),
    ([{"role": "user", "content": "\ud800"}], "lone surrogate"),
    ("\ud800", "lone surrogate"),
])
def test_bad_input_names_the_input_and_the_problem(value: Any, problem: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        check_input(value)
    assert raised.value.message.startswith(("input ", "message #0 of input"))
    assert problem in raised.value.message
    assert raised.value.key == "input"


def test_an_input_among_many_is_named_by_its_index() -> None:
    with pytest.raises(ConfigurationError) as raised:
        check_input([{"role": "user", "content": "ok"}, {"role": "robot", "content": "x"}],
                    index=7)
    assert raised.value.message.startswith("message #1 of input #7 has the role 'robot'")
    assert raised.value.key == "inputs"
