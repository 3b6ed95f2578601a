"""Message-list input on the command line (issue 15): ``llmbackend run --messages FILE`` and the
``"messages"`` key of ``.jsonl`` prompt files, driven as a subprocess against the loopback
emulators: what reaches the provider (the recorded request bodies), the results in input order,
and every bad file or line refused in one line naming it (exit code 2, nothing sent)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from llmbackend import Message
from llmbackend.cli import read_prompts
from tests.anthropic_emulator import API_KEY as ANTHROPIC_KEY
from tests.anthropic_emulator import AnthropicEmulator
from tests.emulator import API_KEY, BatchPlan, OpenAIEmulator
from tests.gemini_emulator import API_KEY as GEMINI_KEY
from tests.gemini_emulator import GeminiEmulator
from tests.test_cli import bodies, cli, jsonl, one_error_line, records

CONVERSATION = [
    {"role": "system", "content": "Answer in German."},
    {"role": "user", "content": "Hello"},
    {"role": "assistant", "content": "Hallo"},
    {"role": "user", "content": "Thanks"},
]
#: The conversation as OpenAI's Responses API takes it: the system message as the instructions,
#: the other turns as role items.
OPENAI_INPUT = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hallo"},
                {"role": "user", "content": "Thanks"}]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "LLMBACKEND_STATE_DIR": str(tmp_path / "state")}


@pytest.fixture
def openai(emulator: OpenAIEmulator, env: dict[str, str]) -> dict[str, str]:
    emulator.batch_plan = BatchPlan(finish_after=1)
    return {**env, "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": emulator.base_url}


@pytest.fixture
def anthropic(anthropic_emulator: AnthropicEmulator, env: dict[str, str]) -> dict[str, str]:
    return {**env, "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
            "ANTHROPIC_BASE_URL": anthropic_emulator.base_url}


@pytest.fixture
def gemini(gemini_emulator: GeminiEmulator, env: dict[str, str]) -> dict[str, str]:
    return {**env, "GOOGLE_API_KEY": GEMINI_KEY,
            "GOOGLE_GEMINI_BASE_URL": gemini_emulator.base_url}


def messages_file(tmp_path: Path, value: Any = CONVERSATION, name: str = "chat.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(value, indent=2))
    return path


# --- run --messages -------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_run_messages_reaches_openai_as_instructions_and_role_items(
        openai: dict[str, str], emulator: OpenAIEmulator, tmp_path: Path, source: str) -> None:
    if source == "file":
        done = cli(openai, "run", "-p", "openai", "-m", "gpt-4o-mini", "--messages",
                   str(messages_file(tmp_path)), "--max-tokens", "20")
    else:
        done = cli(openai, "run", "-p", "openai", "-m", "gpt-4o-mini", "--messages", "-",
                   "--max-tokens", "20", input=json.dumps(CONVERSATION))
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"Echo: {OPENAI_INPUT}\n"  # the emulator echoes the input it got
    assert bodies(emulator) == [{"model": "gpt-4o-mini", "instructions": "Answer in German.",
                                 "input": OPENAI_INPUT, "max_output_tokens": 20}]


def test_run_messages_with_system_flag_and_json_output(openai: dict[str, str],
                                                       emulator: OpenAIEmulator,
                                                       tmp_path: Path) -> None:
    turns = messages_file(tmp_path, CONVERSATION[1:])
    done = cli(openai, "run", "-p", "openai", "-m", "gpt-4o-mini", "--messages", str(turns),
               "--system", "Be brief.", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["text"] == f"Echo: {OPENAI_INPUT}"
    assert bodies(emulator)[0]["instructions"] == "Be brief."
    assert bodies(emulator)[0]["input"] == OPENAI_INPUT
    # A system message in the file and --system too: the library's rule, before sending.
    twice = cli(openai, "run", "-p", "openai", "-m", "gpt-4o-mini", "--messages",
                str(messages_file(tmp_path)), "--system", "Be brief.")
    assert (twice.returncode, twice.stdout) == (2, "")
    one_error_line(twice, "give the system prompt once")
    assert len(bodies(emulator)) == 1


def test_run_messages_on_anthropic_and_gemini_is_their_native_conversation(
        anthropic: dict[str, str], anthropic_emulator: AnthropicEmulator,
        gemini: dict[str, str], gemini_emulator: GeminiEmulator, tmp_path: Path) -> None:
    chat = str(messages_file(tmp_path))
    done = cli(anthropic, "run", "-p", "anthropic", "-m", "claude-haiku-4-5", "--messages", chat)
    assert (done.returncode, done.stdout) == (0, "Echo: Thanks\n")
    sent = anthropic_emulator.requests[-1].json()
    assert sent["system"] == "Answer in German."
    assert [(m["role"], m["content"]) for m in sent["messages"]] == [
        ("user", "Hello"), ("assistant", "Hallo"), ("user", "Thanks")]
    done = cli(gemini, "run", "-p", "gemini", "-m", "gemini-2.5-flash", "--messages", chat)
    assert (done.returncode, done.stdout) == (0, "Echo: Thanks\n")
    sent = gemini_emulator.requests[-1].json()
    assert sent["systemInstruction"]["parts"] == [{"text": "Answer in German."}]
    assert [(c["role"], c["parts"]) for c in sent["contents"]] == [
        ("user", [{"text": "Hello"}]), ("model", [{"text": "Hallo"}]),
        ("user", [{"text": "Thanks"}])]


BAD_FILES: list[tuple[str, bytes, list[str]]] = [
    ("not-utf8", b'[{"role": "user", "content": "caf\xe9"}]', ["not UTF-8 text"]),
    ("not-json", b'[{"role": "user",\n  "content": }]',
     ["not JSON: Expecting value at line 2, column 14"]),
    ("not-a-list", b'{"role": "user", "content": "Hi"}', ["a JSON list of messages", "got dict"]),
    ("a-string", b'"Hi"', ["a JSON list of messages", "got str"]),
    ("empty-file", b"", ["it is empty: give a JSON list of messages"]),
    ("empty-list", b"[]", ["the file is an empty list of messages"]),
    ("bom", b'\xef\xbb\xbf[{"role": "user", "content": "Hi"}, {"role": "user", "content": 1}]',
     ["message #1 of the file must have a string 'content'"]),
    ("unknown-role", b'[{"role": "robot", "content": "Hi"}]',
     ["message #0", "role 'robot'", "one of 'system', 'user', 'assistant'"]),
    ("content-not-string", b'[{"role": "user", "content": "Hi"}, {"role": "user", "content": 5}]',
     ["message #1", "string 'content', got int"]),
    ("unknown-field", b'[{"role": "user", "content": "Hi", "name": "x"}]',
     ["message #0", "unknown field(s) 'name'"]),
    ("only-system", b'[{"role": "system", "content": "Be brief."}]',
     ["holds only system messages"]),
    ("not-a-message", b'["Hi"]', ["message #0", "must be a dict", "got str"]),
    ("lone-surrogate", b'[{"role": "user", "content": "\\ud800"}]', ["lone surrogate"]),
    ("nested-too-deep", b"[" * 100_000, ["nested too deeply"]),
]


@pytest.mark.parametrize(("content", "fragments"), [(c, f) for _, c, f in BAD_FILES],
                         ids=[name for name, _, _ in BAD_FILES])
def test_a_bad_messages_file_exits_2_naming_the_file_and_sends_nothing(
        *, openai: dict[str, str], emulator: OpenAIEmulator, tmp_path: Path, content: bytes,
        fragments: list[str]) -> None:
    path = tmp_path / "chat.json"
    path.write_bytes(content)
    done = cli(openai, "run", "-p", "openai", "-m", "gpt-4o-mini", "--messages", str(path))
    assert (done.returncode, done.stdout) == (2, "")
    line = one_error_line(done, f"error: {path}: ", *fragments)
    assert "Traceback" not in line
    assert emulator.requests == []


def test_a_bad_messages_file_on_stdin_is_named_stdin(openai: dict[str, str],
                                                     emulator: OpenAIEmulator) -> None:
    done = cli(openai, "run", "-p", "openai", "-m", "gpt-4o-mini", "--messages", "-",
               input='[{"role": "robot", "content": "Hi"}]')
    assert (done.returncode, done.stdout) == (2, "")
    one_error_line(done, "error: <stdin>: message #0", "role 'robot'")
    done = cli(openai, "run", "-p", "openai", "-m", "gpt-4o-mini", "--messages", "-",
               input='[{"role": "system", "content": "Be brief."}]')
    assert done.returncode == 2
    one_error_line(done, "error: <stdin>: the input holds only system messages")
    done = cli(openai, "run", "-p", "openai", "-m", "gpt-4o-mini", "--messages", "-", input="\n")
    assert done.returncode == 2
    one_error_line(done, "error: <stdin>: it is empty: give a JSON list of messages")
    assert emulator.requests == []


def test_prompt_and_messages_together_or_a_missing_file_are_usage_errors(
        openai: dict[str, str], emulator: OpenAIEmulator, tmp_path: Path) -> None:
    chat = str(messages_file(tmp_path))
    done = cli(openai, "run", "-p", "openai", "-m", "gpt-4o-mini", "Hello", "--messages", chat)
    assert (done.returncode, done.stdout) == (2, "")
    one_error_line(done, "PROMPT or as --messages FILE, not both", "run --help")
    done = cli(openai, "run", "-p", "openai", "-m", "gpt-4o-mini", "--messages",
               str(tmp_path / "missing.json"))
    assert done.returncode == 2
    one_error_line(done, "--messages", "missing.json", "does not exist")
    assert emulator.requests == []


@pytest.mark.runtime
def test_system_flag_with_messages_on_a_local_model_is_the_first_message_or_refused(
        env: dict[str, str], tiny_model: Path, tmp_path: Path) -> None:
    """On a local model --system beside --messages is extra["system"], as on the remote
    providers: put first in the chat, refused beside a system message of the file's."""
    pytest.importorskip("transformers")
    local = {**env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    without_system = messages_file(tmp_path, CONVERSATION[1:])
    done = cli(local, "run", "-p", "transformers", "-m", str(tiny_model), "--messages",
               str(without_system), "--system", "Be brief.", "--max-tokens", "4")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() != ""
    with_system = messages_file(tmp_path, CONVERSATION, name="with-system.json")
    done = cli(local, "run", "-p", "transformers", "-m", str(tiny_model), "--messages",
               str(with_system), "--system", "Be brief.", "--max-tokens", "4")
    assert (done.returncode, done.stdout) == (2, "")
    one_error_line(done, "give the system prompt once")


# --- "messages" in .jsonl prompt files ------------------------------------------------------------


MIXED = [
    {"prompt": "Say hi", "custom_id": "plain-1"},
    {"messages": CONVERSATION, "custom_id": "chat-1"},
    {"prompt": "Count to three", "custom_id": "plain-2"},
    {"messages": [{"role": "user", "content": "Name a colour"}], "custom_id": "chat-2"},
]


def test_read_prompts_gives_strings_and_conversations(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "p.jsonl", MIXED)
    inputs, custom_ids = read_prompts(str(path), None)
    assert inputs == ["Say hi", tuple(Message(**m) for m in CONVERSATION), "Count to three",
                      (Message(role="user", content="Name a colour"),)]
    assert custom_ids == ["plain-1", "chat-1", "plain-2", "chat-2"]
    # .txt files stay one prompt per line, whatever a line looks like.
    text = tmp_path / "p.txt"
    text.write_text(json.dumps({"messages": CONVERSATION}) + "\n")
    assert read_prompts(str(text), None) == ([json.dumps({"messages": CONVERSATION})], None)


def test_a_mixed_native_batch_sends_each_line_natively_and_results_keep_input_order(
        openai: dict[str, str], emulator: OpenAIEmulator, tmp_path: Path) -> None:
    emulator.batch_plan = BatchPlan(finish_after=1, shuffle_seed=3)  # answers out of order
    prompts = jsonl(tmp_path / "prompts.jsonl", MIXED)
    submitted = cli(openai, "batch", "submit", "-p", "openai", "-m", "gpt-4o-mini",
                    str(prompts))
    assert submitted.returncode == 0, submitted.stderr
    batch_id = submitted.stdout.strip()
    assert f"({len(MIXED)} prompts)" in submitted.stderr
    lines = next(f for f in emulator.files.values() if f.purpose == "batch").lines()
    assert [(line["custom_id"], line["body"].get("instructions"), line["body"]["input"])
            for line in lines] == [
        ("plain-1", None, "Say hi"), ("chat-1", "Answer in German.", OPENAI_INPUT),
        ("plain-2", None, "Count to three"), ("chat-2", None, "Name a colour")]
    out = tmp_path / "out.jsonl"
    done = cli(openai, "batch", "results", batch_id, "-o", str(out))
    assert (done.returncode, done.stderr) == (0, "")
    assert records(out.read_text()) == [
        {"index": 0, "custom_id": "plain-1", "answer": "Echo: Say hi"},
        {"index": 1, "custom_id": "chat-1", "answer": f"Echo: {OPENAI_INPUT}"},
        {"index": 2, "custom_id": "plain-2", "answer": "Echo: Count to three"},
        {"index": 3, "custom_id": "chat-2", "answer": "Echo: Name a colour"}]


def test_a_mixed_immediate_batch_from_stdin_writes_results_in_input_order(
        anthropic: dict[str, str], anthropic_emulator: AnthropicEmulator) -> None:
    lines = ['"Say hi"', json.dumps({"messages": CONVERSATION}),
             json.dumps({"prompt": "Count to three"}),
             json.dumps({"messages": [{"role": "user", "content": "Name a colour"}]})]
    done = cli(anthropic, "batch", "submit", "-p", "anthropic", "-m", "claude-haiku-4-5", "-",
               "--input-format", "jsonl", "--concurrency", "4", input="\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    assert records(done.stdout) == [
        {"index": i, "custom_id": f"request-{i}", "answer": f"Echo: {text}"}
        for i, text in enumerate(["Say hi", "Thanks", "Count to three", "Name a colour"])]
    chat = next(r.json() for r in anthropic_emulator.requests
                if r.json().get("system") == "Answer in German.")
    assert [m["role"] for m in chat["messages"]] == ["user", "assistant", "user"]


BAD_LINES = [
    ("both", '{"prompt": "a", "messages": [{"role": "user", "content": "b"}]}',
     'the object has both "prompt" and "messages": give exactly one'),
    ("neither", '{"custom_id": "x"}', 'no "prompt" or "messages" in the object'),
    ("not-a-list", '{"messages": "Hi"}', '"messages" must be a list of messages ({"role": ...'),
    ("object", '{"messages": {"role": "user", "content": "Hi"}}',
     '"messages" must be a list of messages'),
    ("empty", '{"messages": []}', '"messages" is an empty list of messages'),
    ("unknown-role", '{"messages": [{"role": "robot", "content": "Hi"}]}',
     "message #0 of \"messages\" has the role 'robot'"),
    ("content-not-string", '{"messages": [{"role": "user", "content": null}]}',
     "message #0 of \"messages\" must have a string 'content', got NoneType"),
    ("only-system", '{"messages": [{"role": "system", "content": "Be brief."}]}',
     '"messages" holds only system messages'),
    ("bare-list", '[{"role": "user", "content": "Hi"}]',
     'a list of messages goes in {"messages": [...]}'),
    ("unknown-key", '{"messages": [{"role": "user", "content": "Hi"}], "id": "x"}',
     "unknown key 'id': a line holds \"prompt\" or \"messages\""),
]


@pytest.mark.parametrize(("line", "message"), [(line, m) for _, line, m in BAD_LINES],
                         ids=[name for name, _, _ in BAD_LINES])
def test_a_bad_messages_line_exits_2_naming_file_and_line(
        *, openai: dict[str, str], emulator: OpenAIEmulator, tmp_path: Path, line: str,
        message: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "fine"}\n' + line + "\n")
    done = cli(openai, "batch", "submit", "-p", "openai", "-m", "gpt-4o-mini", str(path))
    assert (done.returncode, done.stdout) == (2, "")
    one_error_line(done, f"error: {path}:2: ", message)
    assert emulator.requests == []


def test_custom_ids_rules_hold_across_prompt_and_messages_lines(
        openai: dict[str, str], emulator: OpenAIEmulator, tmp_path: Path) -> None:
    chat = {"messages": [{"role": "user", "content": "Hi"}]}
    path = jsonl(tmp_path / "p.jsonl", [{"prompt": "a", "custom_id": "x"}, chat])
    done = cli(openai, "batch", "submit", "-p", "openai", "-m", "gpt-4o-mini", str(path))
    assert done.returncode == 2
    one_error_line(done, f"{path}:2: line 1 has a custom_id and line 2 has none")
    path = jsonl(tmp_path / "p.jsonl", [{"prompt": "a", "custom_id": "x"},
                                        {**chat, "custom_id": "x"}])
    done = cli(openai, "batch", "submit", "-p", "openai", "-m", "gpt-4o-mini", str(path))
    assert done.returncode == 2
    one_error_line(done, f"{path}:2: custom_id 'x' is already used on line 1")
    assert emulator.requests == []


def test_a_conversation_the_provider_refuses_names_its_line_before_sending(
        openai: dict[str, str], emulator: OpenAIEmulator, tmp_path: Path) -> None:
    prefill = {"messages": [{"role": "user", "content": "Hi"},
                            {"role": "assistant", "content": "Hel"}]}
    path = jsonl(tmp_path / "p.jsonl", ["fine", prefill])
    done = cli(openai, "batch", "submit", "-p", "openai", "-m", "gpt-4o-mini", str(path))
    assert (done.returncode, done.stdout) == (2, "")
    one_error_line(done, "UnsupportedError: input #1", "prefill", f"(input #1 is {path}:2)")
    assert emulator.requests == []
