"""Pure: message-list input: the ``Message`` value, the one check of an input (a prompt string or
a list of messages), and the split every provider makes of a conversation.

An input is either a prompt (``str``) or a non-empty sequence of messages, each a plain dict
``{"role": "system" | "user" | "assistant", "content": str}`` or a ``Message``. ``check_input``
turns any of them into what a ``GenerationRequest`` carries: the string itself, or a tuple of
``Message`` values. The providers map that tuple natively (OpenAI Responses role items, Anthropic
``messages`` with the system turns lifted into ``system``, Gemini ``contents`` with roles
``user`` / ``model`` and ``systemInstruction``), each from ``split_system``.

Strategy: every rule about a conversation's shape is checked here, once, before any provider
sees it, so that a bad message fails with the same ``ConfigurationError`` (naming the item and
the message) on every provider and every face, before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, TypeAlias, TypedDict

from attrs import frozen

from llmbackend.errors import ConfigurationError
from llmbackend.schemas import text_problem

__all__ = [
    "ROLES",
    "CheckedInput",
    "Conversation",
    "Input",
    "Message",
    "MessageDict",
    "MessageLike",
    "Role",
    "check_input",
    "is_messages",
    "split_system",
]

Role: TypeAlias = Literal["system", "user", "assistant"]
#: The roles a message may have.
ROLES: tuple[Role, ...] = ("system", "user", "assistant")


@frozen
class Message:
    """One turn of a conversation: ``role`` (``"system"``, ``"user"`` or ``"assistant"``) and its
    text ``content``."""

    role: Role
    content: str

    def to_dict(self) -> dict[str, str]:
        """The message as the plain dict form, ``{"role": ..., "content": ...}``."""
        return {"role": self.role, "content": self.content}


class MessageDict(TypedDict):
    """A message as a plain dict, for code that types its dicts (a ``TypedDict`` is not a
    ``Mapping[str, str]`` to a type checker): ``{"role": ..., "content": ...}``."""

    role: Role
    content: str


#: A message as callers write it: a ``Message``, a ``MessageDict`` or a plain
#: ``{"role", "content"}`` dict.
MessageLike: TypeAlias = Message | MessageDict | Mapping[str, str]
#: One input: a prompt string, or a sequence of messages.
Input: TypeAlias = str | Sequence[MessageLike]
#: A checked conversation, as a ``GenerationRequest`` carries it.
Conversation: TypeAlias = tuple[Message, ...]
#: A checked input: the prompt string, or the conversation.
CheckedInput: TypeAlias = str | Conversation


def is_messages(value: object) -> bool:
    """Whether a checked input is a conversation (a tuple of messages) rather than a prompt."""
    return isinstance(value, tuple)


def check_input(value: object, index: int | None = None) -> str | Conversation:
    """``value`` as a checked input: the prompt string itself, or the conversation as a tuple of
    ``Message``; ``ConfigurationError`` naming the input (``index``: its place among many) and
    the problem otherwise."""
    name, key = ("input", "input") if index is None else (f"input #{index}", "inputs")
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise ConfigurationError(message=f"{name} {problem}", key=key)
        return value
    if isinstance(value, Mapping | Message) or not isinstance(value, Sequence) \
            or isinstance(value, bytes | bytearray):
        what = "the prompt" if index is None else "a prompt"
        hint = ""
        if index is not None and isinstance(value, Mapping | Message):
            # A fan-out or batch given one conversation reads its messages as the inputs.
            hint = ": to send one conversation, put its list of messages in the inputs list"
        raise ConfigurationError(
            message=f"{name} must be a string ({what}) or a list of messages "
            "({'role': ..., 'content': ...}), got " + type(value).__name__ + hint, key=key)
    if not value:
        raise ConfigurationError(
            message=f"{name} is an empty list of messages: give at least one user message",
            key=key)
    messages = tuple(_check_message(item, number, name, key)
                     for number, item in enumerate(value))
    if all(message.role == "system" for message in messages):
        raise ConfigurationError(
            message=f"{name} holds only system messages: add the user's turn", key=key)
    return messages


def _check_message(item: object, number: int, name: str, key: str) -> Message:
    where = f"message #{number} of {name}"
    if isinstance(item, Message):
        role: object = item.role
        content: object = item.content
    elif isinstance(item, Mapping):
        unknown = sorted(str(field) for field in item if field not in ("role", "content"))
        if unknown:
            raise ConfigurationError(
                message=f"{where} has unknown field(s) {', '.join(map(repr, unknown))}: a "
                "message is {'role': ..., 'content': ...}", key=key)
        role, content = item.get("role"), item.get("content")
    else:
        raise ConfigurationError(
            message=f"{where} must be a dict {{'role': ..., 'content': ...}} or a "
            f"llmbackend.Message, got {type(item).__name__}", key=key)
    if role not in ROLES:
        raise ConfigurationError(
            message=f"{where} has the role {role!r}: a role is one of "
            f"{', '.join(map(repr, ROLES))}", key=key)
    if not isinstance(content, str):
        raise ConfigurationError(
            message=f"{where} must have a string 'content', got {type(content).__name__}",
            key=key)
    problem = text_problem(content)
    if problem is not None:
        raise ConfigurationError(message=f"{where}: its content {problem}", key=key)
    return Message(role=role, content=content)


def split_system(messages: Conversation) -> tuple[tuple[str, ...], Conversation]:
    """The system messages' texts, in order, and the other turns, in order: the split every
    provider makes (OpenAI's ``instructions``, Anthropic's ``system``, Gemini's
    ``systemInstruction``)."""
    system = tuple(message.content for message in messages if message.role == "system")
    turns = tuple(message for message in messages if message.role != "system")
    return system, turns
