"""The ``llmbackend`` command line, driven as a subprocess (``python -m llmbackend`` and the
console script) against the loopback emulators and the tiny local model: its output, the files it
writes, its exit codes and its one-line errors."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.anthropic_emulator import API_KEY as ANTHROPIC_KEY
from tests.anthropic_emulator import AnthropicEmulator, MessageBatchPlan
from tests.conftest import ROOT
from tests.emulator import API_KEY, BatchPlan, OpenAIEmulator, error_object
from tests.gemini_emulator import API_KEY as GEMINI_KEY
from tests.gemini_emulator import GeminiBatchPlan, GeminiEmulator

KEYS = (API_KEY, ANTHROPIC_KEY, GEMINI_KEY)
SCRIPT = Path(sys.executable).with_name("llmbackend")
SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"],
          "additionalProperties": False}
PROMPTS = ["Translate to German: Hello", "Translate to German: Thanks", "Say hi",
           "Count to three", "Name a colour"]


def cli(env: dict[str, str], *args: str, input: str | None = None, script: bool = False
        ) -> subprocess.CompletedProcess[str]:
    """Run the command line in a new process, as a user would."""
    command = [str(SCRIPT)] if script else [sys.executable, "-m", "llmbackend"]
    return subprocess.run([*command, *args], check=False, env=env, input=input, capture_output=True,
                          text=True, timeout=120,
                          stdin=subprocess.DEVNULL if input is None else None)


def one_error_line(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The one error line on stderr (nothing else there, no traceback), holding ``fragments``."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("llmbackend: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def no_key_in(*texts: str) -> None:
    for text in texts:
        for key in KEYS:
            assert key not in text


def no_key_in_files(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            no_key_in(path.read_text())


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def env(state: Path) -> dict[str, str]:
    """The environment of every run: no provider variable (conftest clears them), batch handles
    in a directory of this test's own."""
    return {**os.environ, "LLMBACKEND_STATE_DIR": str(state)}


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


def jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def bodies(emulator: OpenAIEmulator) -> list[dict[str, Any]]:
    return [r.json() for r in emulator.requests if r.path == "/v1/responses"]


# --- the program itself ---------------------------------------------------------------------------


def test_help_lists_the_commands_and_exit_codes_and_loads_only_click(env: dict[str, str]
                                                                     ) -> None:
    shown = cli(env, "--help", script=True)
    assert shown.returncode == 0
    for words in ("run", "batch", "Exit codes", "130", "OPENAI_API_KEY", "LLMBACKEND_STATE_DIR"):
        assert words in shown.stdout
    timed = subprocess.run([sys.executable, "-X", "importtime", "-m", "llmbackend", "--version"],
                           env=env, capture_output=True, text=True, check=True)
    assert timed.stdout == "llmbackend 0.1.0\n"
    loaded = {line.split("|")[-1].strip() for line in timed.stderr.splitlines()}
    assert "click" in loaded and "llmbackend.cli" in loaded
    assert not {"llmbackend.api", "httpx2", "attr", "returns", "jsonschema"} & loaded


# --- run ------------------------------------------------------------------------------------------


def test_run_prints_the_answer_and_every_flag_reaches_the_request(
        openai: dict[str, str], emulator: OpenAIEmulator) -> None:
    done = cli(openai, "run", "-p", "openai", "-m", "gpt-4o-mini", "Hello there",
               "--temperature", "0.3", "--top-p", "0.9", "--max-tokens", "50",
               "--system", "Be brief.", "-x", "store=false", "-x", 'metadata={"run": "7"}',
               "--timeout", "30", "--max-retries", "0")
    assert (done.returncode, done.stdout, done.stderr) == (0, "Echo: Hello there\n", "")
    assert bodies(emulator) == [{
        "model": "gpt-4o-mini", "input": "Hello there", "instructions": "Be brief.",
        "temperature": 0.3, "top_p": 0.9, "max_output_tokens": 50, "store": False,
        "metadata": {"run": "7"}}]


@pytest.mark.parametrize("argument", [[], ["-"]], ids=["omitted", "dash"])
def test_run_reads_the_prompt_from_stdin(openai: dict[str, str], emulator: OpenAIEmulator,
                                         argument: list[str]) -> None:
    done = cli(openai, "run", "-p", "openai", "-m", "gpt-4o-mini", *argument,
               input="Summarize:\nline one\nline two\n")
    assert (done.returncode, done.stdout) == (0, "Echo: Summarize:\nline one\nline two\n")
    assert bodies(emulator)[0]["input"] == "Summarize:\nline one\nline two"


def test_run_with_a_schema_prints_the_parsed_json_and_json_the_whole_result(
        openai: dict[str, str], emulator: OpenAIEmulator, tmp_path: Path) -> None:
    schema = tmp_path / "title.json"
    schema.write_text(json.dumps(SCHEMA))
    done = cli(openai, "run", "-p", "openai", "-m", "gpt-4o-mini", "A title", "--schema",
               str(schema))
    assert (done.returncode, json.loads(done.stdout)) == (0, {"title": "example"})
    assert bodies(emulator)[0]["text"]["format"]["schema"] == SCHEMA
    whole = cli(openai, "run", "-p", "openai", "-m", "gpt-4o-mini", "A title", "--schema",
                str(schema), "--json")
    assert whole.returncode == 0
    assert json.loads(whole.stdout) == {
        "text": '{"title":"example"}', "parsed": {"title": "example"}, "finish_reason": "stop",
        "usage": {"input_tokens": 11, "output_tokens": 1, "reasoning_tokens": 0,
                  "cached_input_tokens": 0, "total_tokens": 12},
        "provider": "openai", "model": "gpt-4o-mini", "response_id": "resp_emulated"}


def test_run_on_gemini_and_anthropic_with_provider_options(
        gemini: dict[str, str], gemini_emulator: GeminiEmulator, anthropic: dict[str, str],
        anthropic_emulator: AnthropicEmulator, tmp_path: Path) -> None:
    done = cli(gemini, "run", "-p", "gemini", "-m", "gemini-2.5-flash", "Hello", "--seed", "7",
               "--system", "Be brief.")
    assert (done.returncode, done.stdout) == (0, "Echo: Hello\n")
    sent = gemini_emulator.requests[-1].json()
    assert sent["generationConfig"]["seed"] == 7
    assert sent["systemInstruction"]["parts"][0]["text"] == "Be brief."
    schema = tmp_path / "title.json"
    schema.write_text(json.dumps(SCHEMA))
    done = cli(anthropic, "run", "-p", "anthropic", "-m", "claude-haiku-4-5", "A title",
               "--schema", str(schema), "-O", "structured_output=tool")
    assert (done.returncode, json.loads(done.stdout)) == (0, {"title": "example"})
    sent = anthropic_emulator.requests[-1].json()
    assert sent["tool_choice"]["type"] == "tool" and "output_config" not in sent


# --- errors and exit codes ------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "fragments"), [
    (["run", "-m", "gpt-4o-mini", "Hi"], ["Missing option '-p'", "run --help"]),
    (["run", "-p", "openai", "-m", "gpt-4o-mini", "Hi", "--seed", "1"],
     ["UnsupportedError", "'seed'", "-O drop_unsupported_params=true"]),
    (["run", "-p", "openai", "-m", "gpt-4o-mini", "Hi", "--temperature", "5"],
     ["ConfigurationError", "'temperature' must be between 0 and 2"]),
    (["run", "-p", "opneai", "-m", "gpt-4o-mini", "Hi"],
     ["unknown provider 'opneai'", "Did you mean 'openai'?"]),
    (["run", "-p", "openai", "-m", "gpt-4o-mini", "Hi", "-O", "api_key=sk-typed-in-clear"],
     ["'api_key' is not taken here", "OPENAI_API_KEY"]),
    (["run", "-p", "openai", "-m", "gpt-4o-mini", "Hi", "-O", "colour=blue"],
     ["unknown option 'colour'"]),
    (["run", "-p", "openai", "-m", "gpt-4o-mini", "Hi", "--schema", "{bad}"],
     ["{bad}: the schema is not JSON"]),
    (["run", "-p", "openai", "-m", "gpt-4o-mini", "Hi", "--schema", '{"type": "nonsense"}'],
     ["InvalidSchemaError"]),
    (["run", "-p", "openai", "-m", "gpt-4o-mini"], ["the prompt is empty"]),
    (["batch", "status", "batch_abc"], ["no saved handle for batch 'batch_abc'", "-p PROVIDER"]),
    (["batch", "status", "abc", "-p", "transformers"], ["runs its batches at once"]),
    (["batch", "status", "immediate-0123", "-p", "anthropic"], ["cannot be re-attached"]),
], ids=["missing-option", "unsupported-seed", "out-of-range", "unknown-provider",
        "api-key-refused", "unknown-option", "schema-not-json", "invalid-schema", "empty-prompt",
        "no-handle", "local-reattach", "immediate-reattach"])
def test_usage_and_configuration_errors_exit_2_in_one_line_before_sending_anything(
        *, openai: dict[str, str], anthropic: dict[str, str], emulator: OpenAIEmulator,
        anthropic_emulator: AnthropicEmulator, tmp_path: Path, args: list[str],
        fragments: list[str]) -> None:
    if "--schema" in args:  # the schema's text goes to a file, named on the command line
        at = args.index("--schema") + 1
        path = tmp_path / args[at]
        path.write_text(args[at])
        args = [*args[:at], str(path), *args[at + 1:]]
    done = cli({**openai, **anthropic}, *args)
    assert done.returncode == 2
    assert done.stdout == ""
    line = one_error_line(done, *fragments)
    assert "sk-typed-in-clear" not in line
    assert emulator.requests == [] and anthropic_emulator.requests == []


def test_a_missing_key_exits_2_naming_the_variable(env: dict[str, str]) -> None:
    done = cli(env, "run", "-p", "anthropic", "-m", "claude-haiku-4-5", "Hi")
    assert done.returncode == 2
    one_error_line(done, "MissingCredentialsError", "set the ANTHROPIC_API_KEY environment")


def test_provider_errors_exit_3_in_one_line_and_debug_shows_the_traceback(
        openai: dict[str, str], emulator: OpenAIEmulator) -> None:
    failure = error_object("The server had an error", "server_error", None)
    emulator.reply(500, failure)
    done = cli(openai, "run", "-p", "openai", "-m", "gpt-4o-mini", "Hi", "--max-retries", "0")
    assert (done.returncode, done.stdout) == (3, "")
    one_error_line(done, "HTTPStatusError", "HTTP 500", "The server had an error")
    emulator.reply(500, failure)
    debug = cli(openai, "--debug", "run", "-p", "openai", "-m", "gpt-4o-mini", "Hi",
                "--max-retries", "0")
    assert debug.returncode == 3
    assert "Traceback (most recent call last)" in debug.stderr
    assert "llmbackend: debug: POST " in debug.stderr  # the library's DEBUG log line
    assert debug.stderr.strip().splitlines()[-1] == one_error_line(done)


def test_a_dropped_parameter_warns_in_one_line_and_debug_goes_after_the_command(
        openai: dict[str, str], emulator: OpenAIEmulator) -> None:
    done = cli(openai, "run", "-p", "openai", "-m", "gpt-4o-mini", "Hi", "--seed", "3",
               "-O", "drop_unsupported_params=true", "--debug")
    assert (done.returncode, done.stdout) == (0, "Echo: Hi\n")
    lines = done.stderr.splitlines()
    assert [line.split(":")[1] for line in lines] == [" warning", " debug"]
    assert "'seed'" in lines[0] and "dropped" in lines[0]
    assert "seed" not in bodies(emulator)[0]


def test_a_timeout_exits_3(openai: dict[str, str], emulator: OpenAIEmulator) -> None:
    emulator.reply(200, b"{}", delay=1.0)
    done = cli(openai, "run", "-p", "openai", "-m", "gpt-4o-mini", "Hi", "--timeout", "0.2",
               "--max-retries", "0")
    assert done.returncode == 3
    one_error_line(done, "RequestTimeoutError")


def test_a_key_quoted_back_by_the_provider_never_reaches_output_or_files(
        openai: dict[str, str], emulator: OpenAIEmulator, state: Path, tmp_path: Path) -> None:
    quoted = error_object(f"Incorrect API key provided: {API_KEY}.", "invalid_request_error",
                          "invalid_api_key")
    for debug in ([], ["--debug"]):
        emulator.reply(401, quoted)
        done = cli(openai, *debug, "run", "-p", "openai", "-m", "gpt-4o-mini", "Hi")
        assert done.returncode == 3
        assert "Incorrect API key provided" in done.stderr
        no_key_in(done.stdout, done.stderr)
    emulator.batch_plan = BatchPlan(finish_after=1, item_errors={"request-1": (401, quoted)})
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\ntwo\n")
    submitted = cli(openai, "--debug", "batch", "submit", "-p", "openai", "-m", "gpt-4o-mini",
                    str(prompts))
    out = tmp_path / "out.jsonl"
    done = cli(openai, "--debug", "batch", "results", submitted.stdout.strip(), "-o", str(out))
    assert done.returncode == 4
    assert "Incorrect API key provided" in out.read_text()
    no_key_in(submitted.stdout, submitted.stderr, done.stdout, done.stderr)
    assert len(list(state.iterdir())) == 1
    no_key_in_files(tmp_path)  # the saved handle and the results file


def test_an_internal_error_exits_1_and_asks_for_debug(openai: dict[str, str],
                                                      tmp_path: Path) -> None:
    # A bug in the command line itself, planted in the command line's own code.
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\n")
    code = ("import sys, llmbackend.cli as cli\n"
            "def broken(path, input_format):\n"
            "    return {}['missing']\n"
            "cli.read_prompts = broken\n"
            "sys.exit(cli.main(sys.argv[1:]))\n")
    args = ["batch", "submit", "-p", "openai", "-m", "gpt-4o-mini", str(prompts)]
    done = subprocess.run([sys.executable, "-c", code, *args], check=False, env=openai,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    one_error_line(done, "internal error (KeyError: 'missing')", "rerun with --debug")
    debug = subprocess.run([sys.executable, "-c", code, "--debug", *args], check=False, env=openai,
                           capture_output=True, text=True, timeout=60)
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr


def test_ctrl_c_exits_130(openai: dict[str, str], emulator: OpenAIEmulator,
                          tmp_path: Path) -> None:
    emulator.batch_plan = BatchPlan(finish_after=1000)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\ntwo\n")
    batch_id = cli(openai, "batch", "submit", "-p", "openai", "-m", "gpt-4o-mini",
                   str(prompts)).stdout.strip()
    # SIGINT raises KeyboardInterrupt as in a terminal, even where the test runner's own
    # process ignores it (a background job).
    code = ("import signal, sys\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "from llmbackend.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    waiting = subprocess.Popen(
        [sys.executable, "-c", code, "batch", "wait", batch_id, "--poll-interval", "30"],
        env=openai, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while emulator.batches[batch_id].retrieves < 2 and time.monotonic() < deadline:
        time.sleep(0.02)  # restore_batch fetches once, then wait() polls: it is in its pause
    waiting.send_signal(signal.SIGINT)
    stdout, stderr = waiting.communicate(timeout=30)
    assert waiting.returncode == 130
    assert (stdout, stderr.strip()) == ("", "llmbackend: error: interrupted (a batch already "
                                        "submitted goes on at the provider)")


def test_a_reader_that_stops_early_ends_the_command_quietly_with_141(
        openai: dict[str, str], emulator: OpenAIEmulator) -> None:
    reading = subprocess.Popen([sys.executable, "-m", "llmbackend", "run", "-p", "openai", "-m",
                                "gpt-4o-mini", "Hi"], env=openai, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert reading.stdout is not None and reading.stderr is not None
    reading.stdout.close()  # as `| head` does once it has what it wants
    stderr = reading.stderr.read()
    assert reading.wait(timeout=60) == 141
    assert stderr == ""
    assert len(bodies(emulator)) == 1


# --- bad prompt files -----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "content", "message"), [
    ("p.txt", "one\n\nthree\n", "p.txt:2: empty line"),
    ("p.txt", "one\n   \n", "p.txt:2: empty line"),
    ("p.txt", "", "p.txt: no prompts in it"),
    ("p.jsonl", '{"prompt": "one"}\n{"prompt": "two"\n', 'p.jsonl:2: not JSON: Expecting'),
    ("p.jsonl", '{"prompt": "one"}\n{"custom_id": "b"}\n', 'p.jsonl:2: no "prompt"'),
    ("p.jsonl", '{"prompt": 1}\n', 'p.jsonl:1: "prompt" must be a string'),
    ("p.jsonl", '{"prompt": "one", "id": "a"}\n', "p.jsonl:1: unknown key 'id'"),
    ("p.jsonl", '[1]\n', "p.jsonl:1: each line is a JSON object"),
    ("p.jsonl", '{"prompt": "a", "custom_id": "x"}\n"b"\n',
     "p.jsonl:2: line 1 has a custom_id and line 2 has none"),
    ("p.jsonl", '"a"\n{"prompt": "b", "custom_id": "x"}\n',
     "p.jsonl:2: line 2 has a custom_id and line 1 has none"),
    ("p.jsonl", '{"prompt": "a", "custom_id": "x"}\n{"prompt": "b", "custom_id": "x"}\n',
     "p.jsonl:2: custom_id 'x' is already used on line 1"),
    ("p.jsonl", '{"prompt": ""}\n', "p.jsonl:1: the prompt is empty"),
    ("p.csv", "one\n", "cannot tell how the prompts are written"),
], ids=["empty-line", "blank-line", "empty-file", "bad-json", "missing-prompt",
        "prompt-not-string", "unknown-key", "not-an-object", "ids-then-none", "none-then-ids",
        "duplicate-id", "empty-prompt", "unknown-extension"])
def test_bad_prompt_files_exit_2_naming_the_line(*, openai: dict[str, str],
                                                 emulator: OpenAIEmulator, tmp_path: Path,
                                                 name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    done = cli(openai, "batch", "submit", "-p", "openai", "-m", "gpt-4o-mini", str(path))
    assert (done.returncode, done.stdout) == (2, "")
    one_error_line(done, f"{tmp_path}/{message}" if name in message else message)
    assert emulator.requests == []


def test_stdin_prompts_need_a_format_and_custom_ids_are_checked_by_the_provider(
        openai: dict[str, str], emulator: OpenAIEmulator) -> None:
    done = cli(openai, "batch", "submit", "-p", "openai", "-m", "gpt-4o-mini", "-",
               input="one\n")
    assert done.returncode == 2
    one_error_line(done, "--input-format txt")
    bad_id = json.dumps({"prompt": "one", "custom_id": "has space"})
    done = cli(openai, "batch", "submit", "-p", "openai", "-m", "gpt-4o-mini", "-",
               "--input-format", "jsonl", input=bad_id + "\n")
    assert done.returncode == 2
    one_error_line(done, "custom id #0 'has space' is not valid", "line i+1 of <stdin>")
    assert emulator.requests == []


def test_output_is_refused_for_native_batches_and_checked_before_sending(openai: dict[str, str],
                                                      emulator: OpenAIEmulator,
                                                      tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\n")
    done = cli(openai, "batch", "submit", "-p", "openai", "-m", "gpt-4o-mini", str(prompts),
               "-o", str(tmp_path / "out.jsonl"))
    assert done.returncode == 2
    one_error_line(done, "-o/--output is for batches that run at once", "batch results ID")
    done = cli(openai, "batch", "submit", "-p", "openai", "-m", "gpt-4o-mini", str(prompts),
               "--mode", "immediate", "-o", str(tmp_path / "missing" / "out.jsonl"))
    assert done.returncode == 2
    one_error_line(done, "there is no directory")
    assert emulator.requests == []


# --- native batches -------------------------------------------------------------------------------


def test_openai_batch_submit_status_wait_results(openai: dict[str, str],
                                                 emulator: OpenAIEmulator, state: Path,
                                                 tmp_path: Path) -> None:
    emulator.batch_plan = BatchPlan(finish_after=4, shuffle_seed=3)
    ids = [f"item-{i}" for i in range(len(PROMPTS))]
    prompts = jsonl(tmp_path / "prompts.jsonl",
                    [{"prompt": p, "custom_id": i} for p, i in zip(PROMPTS, ids, strict=True)])
    submitted = cli(openai, "batch", "submit", "-p", "openai", "-m", "gpt-4o-mini",
                    str(prompts), "--display-name", "nightly", "--max-tokens", "40",
                    "--system", "Answer in German.")
    assert submitted.returncode == 0
    batch_id = submitted.stdout.strip()
    assert submitted.stdout == batch_id + "\n" and batch_id.startswith("batch_")
    handle = state / f"{batch_id}.json"
    assert str(handle) in submitted.stderr
    saved = json.loads(handle.read_text())
    assert (saved["format"], saved["provider"], saved["id"]) == (
        "llmbackend.batch/1", "openai", batch_id)
    assert saved["parts"][0]["custom_ids"] == ids
    assert oct(handle.stat().st_mode & 0o777) == "0o600"
    lines = next(f for f in emulator.files.values() if f.purpose == "batch").lines()
    assert [line["custom_id"] for line in lines] == ids
    assert lines[0]["body"] == {"model": "gpt-4o-mini", "input": PROMPTS[0],
                                "instructions": "Answer in German.", "max_output_tokens": 40}
    assert emulator.batches[batch_id].api_object["metadata"] == {"display_name": "nightly"}

    status = cli(openai, "batch", "status", batch_id)
    assert status.returncode == 0
    assert status.stdout.startswith("running (") and "of 5 requests done" in status.stdout
    waited = cli(openai, "batch", "wait", batch_id, "--poll-interval", "0.05", "--progress")
    assert (waited.returncode, waited.stdout) == (
        0, "completed (5 of 5 requests done: 5 completed, 0 failed)\n")
    assert "5/5" in waited.stderr  # the progress display
    as_json = cli(openai, "batch", "status", batch_id, "--json")
    state_now = json.loads(as_json.stdout)
    assert (state_now["status"], state_now["ended"], state_now["counts"]) == (
        "completed", True, {"total": 5, "completed": 5, "failed": 0, "pending": 0})
    assert state_now["raw"][0]["id"] == batch_id

    out = tmp_path / "out.jsonl"
    done = cli(openai, "batch", "results", batch_id, "-o", str(out))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert records(out.read_text()) == [
        {"index": i, "custom_id": ids[i], "answer": f"Echo: {p}"} for i, p in enumerate(PROMPTS)]
    listed = cli(openai, "batch", "list")
    assert listed.stdout.startswith(f"{batch_id}\topenai\tgpt-4o-mini\t5 requests\tsaved ")
    no_key_in_files(state)


def test_partly_failed_and_expired_batches_exit_4_with_every_item_written(
        openai: dict[str, str], emulator: OpenAIEmulator, tmp_path: Path) -> None:
    emulator.batch_plan = BatchPlan(
        finish_after=1, outcome="expired", done=3, shuffle_seed=1,
        item_errors={"request-1": (400, error_object("Invalid 'input': too long",
                                                     "invalid_request_error", None))})
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(p + "\n" for p in PROMPTS))
    batch_id = cli(openai, "batch", "submit", "-p", "openai", "-m", "gpt-4o-mini",
                   str(prompts)).stdout.strip()
    out = tmp_path / "out.jsonl"
    done = cli(openai, "batch", "results", batch_id, "-o", str(out))
    assert done.returncode == 4
    one_error_line(done, "3 of 5 items failed", str(out))
    got = records(out.read_text())
    assert [(r["index"], r["custom_id"]) for r in got] == [
        (i, f"request-{i}") for i in range(5)]
    assert got[0]["answer"] == f"Echo: {PROMPTS[0]}"
    assert got[2]["answer"] == f"Echo: {PROMPTS[2]}"
    assert got[1]["error"] == {"type": "HTTPStatusError", "retryable": False,
                               "message": "OpenAI answered HTTP 400 (invalid_request_error): "
                               "Invalid 'input': too long"}
    for record in got[3:]:
        assert record["error"]["type"] == "ProviderError"
        assert "batch_expired" in record["error"]["message"]


def test_a_running_batch_exits_5_then_cancel(openai: dict[str, str], emulator: OpenAIEmulator,
                                            tmp_path: Path) -> None:
    emulator.batch_plan = BatchPlan(finish_after=1000)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\ntwo\n")
    batch_id = cli(openai, "batch", "submit", "-p", "openai", "-m", "gpt-4o-mini",
                   str(prompts)).stdout.strip()
    out = tmp_path / "out.jsonl"
    early = cli(openai, "batch", "results", batch_id, "-o", str(out))
    assert early.returncode == 5
    one_error_line(early, "has not ended yet", f"llmbackend batch wait {batch_id}")
    assert not out.exists() and list(tmp_path.glob("*.tmp")) == []
    waited = cli(openai, "batch", "wait", batch_id, "--poll-interval", "0.05", "--timeout",
                 "0.2")
    assert (waited.returncode, waited.stdout) == (5, "")
    one_error_line(waited, "BatchNotReadyError", "still 'running'")
    cancelled = cli(openai, "batch", "cancel", batch_id)
    assert cancelled.returncode == 0
    assert cancelled.stdout.startswith(("cancelling", "cancelled"))
    assert any(r.path == f"/v1/batches/{batch_id}/cancel" for r in emulator.requests)
    done = cli(openai, "batch", "results", batch_id)
    assert done.returncode == 4
    assert [("answer" in r, r["custom_id"]) for r in records(done.stdout)] == [
        (True, "request-0"), (False, "request-1")]


# --- ids from the server, and the state directory -------------------------------------------------


@pytest.mark.parametrize("batch_id", ["batch 1", "../../x", "x" * 5000])
def test_an_odd_id_is_printed_saved_and_taken_back_verbatim_by_every_command(
        openai: dict[str, str], emulator: OpenAIEmulator, state: Path, tmp_path: Path,
        batch_id: str) -> None:
    from llmbackend.cli import handle_file_name

    emulator.batch_plan = BatchPlan(finish_after=2)
    emulator.batch_ids.append(batch_id)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\ntwo\n")
    submitted = cli(openai, "batch", "submit", "-p", "openai", "-m", "gpt-4o-mini", str(prompts))
    assert (submitted.returncode, submitted.stdout) == (0, batch_id + "\n")
    saved = json.loads((state / handle_file_name(batch_id)).read_text())
    assert saved["id"] == saved["parts"][0]["id"] == batch_id
    for command in ("status", "wait", "cancel"):
        done = cli(openai, "batch", command, batch_id)
        assert done.returncode == 0, done.stderr
    answers = cli(openai, "batch", "results", batch_id)
    assert (answers.returncode, [r["answer"] for r in records(answers.stdout)]) == (
        0, ["Echo: one", "Echo: two"])
    assert cli(openai, "batch", "list").stdout.startswith(f"{batch_id}\topenai\t")
    elsewhere = {**openai, "LLMBACKEND_STATE_DIR": str(tmp_path / "elsewhere")}
    attached = cli(elsewhere, "batch", "status", batch_id, "-p", "openai", "--json")
    assert attached.returncode == 0 and json.loads(attached.stdout)["id"] == batch_id


def test_an_id_that_cannot_be_used_is_refused_at_submit_escaped_and_nothing_is_saved(
        openai: dict[str, str], emulator: OpenAIEmulator, state: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\n")
    for batch_id in ("batch\n1", "\x1b[2J\x1b[31mred", "\ud800", "..", "a+b", ""):
        emulator.batch_ids.append(batch_id)
        submitted = cli(openai, "batch", "submit", "-p", "openai", "-m", "gpt-4o-mini",
                        str(prompts))
        assert (submitted.returncode, submitted.stdout) == (3, ""), batch_id
        one_error_line(submitted, "ProviderError", repr(batch_id), "cancel it there")
        assert "\x1b" not in submitted.stderr
        assert list(state.glob("*.json")) == []
    assert len(emulator.batches) == 6  # each was made: the error is what tells of it


def test_an_id_argument_that_is_no_id_exits_2(openai: dict[str, str]) -> None:
    for argument in ("\udcff", "a\nb", ".."):  # "\udcff": a byte that is not UTF-8
        unsaved = cli(openai, "batch", "status", argument)
        assert unsaved.returncode == 2
        one_error_line(unsaved, "no saved handle")
        by_id = cli(openai, "batch", "status", argument, "-p", "openai")
        assert by_id.returncode == 2
        one_error_line(by_id, "is not an OpenAI batch id")


def test_batch_list_shows_every_handle_whatever_else_the_directory_holds(
        env: dict[str, str], state: Path) -> None:
    state.mkdir()
    for batch_id in ("batch_good", ".batch_dot", "evil\x1b[2Jid"):
        handle = {"format": "llmbackend.batch/1", "provider": "openai", "id": batch_id,
                  "parts": [{"id": batch_id, "custom_ids": ["a"]}], "model": "gpt-4o-mini"}
        (state / f"{batch_id}.json").write_text(json.dumps(handle))
    os.mkfifo(state / "fifo.json")  # opening it for reading would block
    (state / "deep.json").write_text("[" * 100_000 + "]" * 100_000)  # RecursionError in json
    (state / "dir.json").mkdir()
    (state / "latin1.json").write_bytes(b'{"id": "\xff"}')
    listed = subprocess.run([sys.executable, "-m", "llmbackend", "batch", "list"], env=env,
                            capture_output=True, text=True, timeout=30, check=False)
    assert (listed.returncode, listed.stderr) == (0, "")
    assert sorted(line.split("\t")[0] for line in listed.stdout.splitlines()) == sorted([
        ".batch_dot", "'evil\\x1b[2Jid'", "batch_good"])  # an escape code is shown escaped
    as_json = cli(env, "batch", "list", "--json")
    assert sorted(r["id"] for r in records(as_json.stdout)) == [
        ".batch_dot", "batch_good", "evil\x1b[2Jid"]
    for name, words in (("fifo", "not a regular file"), ("deep", "nested too deep")):
        opened = subprocess.run([sys.executable, "-m", "llmbackend", "batch", "status", name],
                                env=env, capture_output=True, text=True, timeout=30,
                                check=False)
        assert opened.returncode == 2
        one_error_line(opened, words)


def test_reattach_by_provider_and_id_without_a_saved_handle(
        openai: dict[str, str], emulator: OpenAIEmulator, tmp_path: Path) -> None:
    emulator.batch_plan = BatchPlan(finish_after=1, shuffle_seed=2)
    prompts = jsonl(tmp_path / "prompts.jsonl",
                    [{"prompt": p, "custom_id": f"q{9 - i}"} for i, p in enumerate(PROMPTS)])
    batch_id = cli(openai, "batch", "submit", "-p", "openai", "-m", "gpt-4o-mini",
                   str(prompts)).stdout.strip()
    elsewhere = {**openai, "LLMBACKEND_STATE_DIR": str(tmp_path / "elsewhere")}
    lost = cli(elsewhere, "batch", "results", batch_id)
    assert lost.returncode == 2
    one_error_line(lost, f"no saved handle for batch {batch_id!r}", "give -p PROVIDER")
    found = cli(elsewhere, "batch", "results", batch_id, "-p", "openai")
    assert found.returncode == 0
    assert records(found.stdout) == [  # order and custom ids read back from the provider
        {"index": i, "custom_id": f"q{9 - i}", "answer": f"Echo: {p}"}
        for i, p in enumerate(PROMPTS)]
    mismatch = cli(openai, "batch", "status", batch_id, "-p", "gemini")
    assert mismatch.returncode == 2
    one_error_line(mismatch, "is a 'openai' batch")


def test_anthropic_native_batch(anthropic: dict[str, str],
                                anthropic_emulator: AnthropicEmulator, state: Path,
                                tmp_path: Path) -> None:
    anthropic_emulator.batch_plan = MessageBatchPlan(
        finish_after=2, shuffle_seed=4, item_errors={"c": ("overloaded_error", "Overloaded")})
    prompts = jsonl(tmp_path / "prompts.jsonl",
                    [{"prompt": p, "custom_id": c} for p, c in zip(PROMPTS, "abcde",
                                                                   strict=True)])
    submitted = cli(anthropic, "batch", "submit", "-p", "anthropic", "-m", "claude-haiku-4-5",
                    str(prompts), "--mode", "native", "--system", "Be brief.")
    assert submitted.returncode == 0
    batch_id = submitted.stdout.strip()
    assert batch_id.startswith("msgbatch_") and (state / f"{batch_id}.json").exists()
    assert anthropic_emulator.batches[batch_id].requests[0]["params"]["system"] == "Be brief."
    waited = cli(anthropic, "batch", "wait", batch_id, "--poll-interval", "0.05")
    assert (waited.returncode, waited.stdout) == (
        0, "completed (5 of 5 requests done: 4 completed, 1 failed)\n")
    done = cli(anthropic, "batch", "results", batch_id)
    assert done.returncode == 4
    got = records(done.stdout)
    assert [r["custom_id"] for r in got] == list("abcde")
    assert [r.get("answer") for r in got] == [
        f"Echo: {p}" if c != "c" else None for p, c in zip(PROMPTS, "abcde", strict=True)]
    assert got[2]["error"]["type"] == "ProviderError"
    assert "Overloaded" in got[2]["error"]["message"]
    no_key_in_files(state)


def test_gemini_batch_with_a_schema(gemini: dict[str, str], gemini_emulator: GeminiEmulator,
                                    state: Path, tmp_path: Path) -> None:
    gemini_emulator.batch_plan = GeminiBatchPlan(finish_after=2, shuffle_seed=5)
    schema = tmp_path / "title.json"
    schema.write_text(json.dumps(SCHEMA))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(p + "\r\n" for p in PROMPTS[:3]))  # Windows line ends too
    submitted = cli(gemini, "batch", "submit", "-p", "gemini", "-m", "gemini-2.5-flash",
                    str(prompts), "--schema", str(schema))
    assert submitted.returncode == 0
    batch_id = submitted.stdout.strip()
    assert batch_id.startswith("batches/")
    assert [p.name for p in state.iterdir()] == [batch_id.replace("/", "%2F") + ".json"]
    assert cli(gemini, "batch", "wait", batch_id, "--poll-interval", "0.05").returncode == 0
    done = cli(gemini, "batch", "results", batch_id)
    assert done.returncode == 0
    assert records(done.stdout) == [
        {"index": i, "custom_id": f"request-{i}", "answer": {"title": "example"}}
        for i in range(3)]
    no_key_in_files(state)


# --- batches that run at once ---------------------------------------------------------------------


def test_anthropic_batches_run_at_once_by_default_and_write_their_results(
        anthropic: dict[str, str], anthropic_emulator: AnthropicEmulator, state: Path,
        tmp_path: Path) -> None:
    done = cli(anthropic, "batch", "submit", "-p", "anthropic", "-m", "claude-haiku-4-5", "-",
               "--input-format", "txt", input="one\ntwo\nthree\n")
    assert done.returncode == 0
    assert records(done.stdout) == [
        {"index": i, "custom_id": f"request-{i}", "answer": f"Echo: {p}"}
        for i, p in enumerate(["one", "two", "three"])]
    assert "ran at once: 3 prompts, 3 succeeded, 0 failed" in done.stderr
    assert "immediate-" in done.stderr
    assert not state.exists()  # nothing to come back to
    anthropic_emulator.message_errors["two"] = (400, "invalid_request_error", "Too long")
    out = tmp_path / "out.jsonl"
    failed = cli(anthropic, "batch", "submit", "-p", "anthropic", "-m", "claude-haiku-4-5",
                 "-", "--input-format", "txt", "-o", str(out), "--concurrency", "2",
                 "--progress", input="one\ntwo\nthree\n")
    assert (failed.returncode, failed.stdout) == (4, "")
    assert "3/3" in failed.stderr  # the progress display
    assert failed.stderr.strip().splitlines()[-1].startswith(
        "llmbackend: error: 1 of 3 items failed")
    got = records(out.read_text())
    assert [r.get("answer") for r in got] == ["Echo: one", None, "Echo: three"]
    assert got[1]["error"]["type"] == "HTTPStatusError"


@pytest.mark.runtime
def test_a_local_model_batch_runs_at_once_from_its_path(env: dict[str, str], tiny_model: Path,
                                                tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    # (docs/cli.md's examples run a local model too, named by Hub id: see the last test.)
    local = {**env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Hello\nBonjour\n")
    out = tmp_path / "out.jsonl"
    batch = cli(local, "batch", "submit", "-p", "transformers", "-m", str(tiny_model),
                str(prompts), "-o", str(out), "--max-tokens", "8", "--system", "Be brief.",
                "-O", "apply_chat_template=true")
    assert batch.returncode == 0, batch.stderr
    got = records(out.read_text())
    assert [(r["index"], r["custom_id"]) for r in got] == [(0, "request-0"), (1, "request-1")]
    assert all(isinstance(r["answer"], str) for r in got)



def test_every_handle_file_name_is_safe() -> None:
    from llmbackend.cli import handle_file_name

    assert handle_file_name("batches/abc") == "batches%2Fabc.json"
    assert handle_file_name("batch_a+batch_b") == "batch_a%2Bbatch_b.json"
    assert handle_file_name("../x") == "..%2Fx.json"
    assert handle_file_name("..") == "...json"  # a plain file name, in the state directory
    assert handle_file_name("batch 1") == "batch%201.json"
    assert handle_file_name("\udcff") == "%ED%B3%BF.json"  # never raises, whatever the string
    long = [handle_file_name(c * 300) for c in "ab"] + [handle_file_name("\u20ac" * 5000)]
    assert all(len(name.encode()) < 255 for name in long) and len(set(long)) == 3


# --- the page's examples --------------------------------------------------------------------------


def shell_examples(page: Path) -> list[str]:
    """The commands of every ```bash block of ``page``, in order, continuation lines joined; the
    lines that set credentials (``export``) or install (``pip``) are the reader's, not the
    test's: the test's environment has the emulators' keys and base URLs instead."""
    blocks = re.findall(r"^```bash\n(.*?)^```", page.read_text(), flags=re.S | re.M)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [line for line in lines if not line.startswith(("export ", "pip "))]


@pytest.mark.runtime
def test_the_shell_examples_of_docs_cli_md_run_as_written(
        *, openai: dict[str, str], anthropic: dict[str, str], gemini: dict[str, str],
        emulator: OpenAIEmulator, anthropic_emulator: AnthropicEmulator,
        gemini_emulator: GeminiEmulator, offline_hub: Callable[[str], Path], state: Path,
        tmp_path: Path) -> None:
    lines = shell_examples(ROOT / "docs" / "cli.md")
    assert any("batch submit -p openai" in line for line in lines)
    if importlib.util.find_spec("transformers") is None:
        lines = [line for line in lines if "-p transformers" not in line]
    else:
        offline_hub("Qwen/Qwen2.5-0.5B-Instruct")  # the tiny model answers under that name
    for server in (emulator, anthropic_emulator, gemini_emulator):
        server.batch_plan = attrs.evolve(server.batch_plan, finish_after=1)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, **openai, **anthropic, **gemini,
           "PATH": f"{SCRIPT.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(lines)], env=env,
                          cwd=work, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "every prompt answered" in done.stdout
    answers = records((work / "answers.jsonl").read_text())
    assert [r["custom_id"] for r in answers] in (
        [f"review-{i}" for i in (1, 2, 3)], [f"request-{i}" for i in range(2)])
    for name in ("claude.jsonl", "gemini.jsonl"):
        assert len(records((work / name).read_text())) in (2, 3)
    assert "llmbackend: warning:" in done.stderr and "Traceback" not in done.stderr
    no_key_in_files(state)


# --- issue 14: answers read from the server exit 3; missing batch routes say what to use --------


@pytest.mark.parametrize(("item", "error"), [
    ({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "lookup",
      "arguments": "{}", "status": "completed"}, "ToolCallError"),
    ({"type": "mcp_approval_request", "id": "mcpr_1", "name": "lookup", "arguments": "{}",
      "server_label": "deepwiki"}, "NoTextError"),
], ids=["tool-call", "no-text"])
def test_an_answer_without_text_exits_3_not_2(openai: dict[str, str], emulator: OpenAIEmulator,
                                             item: dict[str, Any], error: str) -> None:
    from tests.emulator import response_body

    emulator.reply(200, response_body("gpt-4o-mini", "", output=[item]))
    done = cli(openai, "run", "-p", "openai", "-m", "gpt-4o-mini", "Hi")
    assert done.returncode == 3  # read from the answer, after sending: not a usage error
    assert done.stdout == ""
    one_error_line(done, error, item["type"] if error == "NoTextError" else "lookup")


@pytest.mark.parametrize(("provider", "route", "shown"), [
    ("openai", "POST /v1/files", "POST /files"),
    ("anthropic", "POST /v1/messages/batches", "POST /v1/messages/batches"),
    ("gemini", "POST /v1beta/models/.*:batchGenerateContent",
     "POST /v1beta/models/{model}:batchGenerateContent"),
])
def test_a_server_without_the_batch_api_names_the_route_and_the_immediate_mode(
        *, openai: dict[str, str], anthropic: dict[str, str], gemini: dict[str, str],
        tmp_path: Path, provider: str, route: str, shown: str) -> None:
    from tests.faults import FaultServer, Reply
    from tests.faults import route as matching

    envs = {"openai": (openai, "OPENAI_BASE_URL", "gpt-4o-mini"),
            "anthropic": (anthropic, "ANTHROPIC_BASE_URL", "claude-sonnet-4-5"),
            "gemini": (gemini, "GOOGLE_GEMINI_BASE_URL", "gemini-2.5-flash")}
    env, variable, model = envs[provider]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\ntwo\n")
    with FaultServer(upstream=env[variable]) as faults:
        faults.push(Reply(404, b'{"detail":"Not Found"}'), when=matching(route))
        done = cli({**env, variable: faults.base_url}, "batch", "submit", "-p", provider,
                   "-m", model, "--mode", "native", str(prompts))
        assert faults.served(route), faults.requests
    assert done.returncode == 3
    line = one_error_line(done, "HTTP 404", f"no {shown} route", "--mode immediate",
                          "batch_options={'mode': 'immediate'}")
    assert "must implement the Responses API" not in line


def test_seed_and_stop_reach_a_compatible_server_with_server_compatible(
        openai: dict[str, str], emulator: OpenAIEmulator) -> None:
    """vLLM's /v1/responses takes seed and stop; OpenAI's own API does not (issue 14)."""
    from tests.emulator import response_body
    from tests.faults import FaultServer, Reply

    with FaultServer(upstream=emulator.base_url) as faults:
        faults.push(Reply(200, response_body("tiny", "Hello")))
        env = {**openai, "OPENAI_BASE_URL": faults.base_url}
        done = cli(env, "run", "-p", "openai", "-m", "tiny", "Hi", "--seed", "3",
                   "-x", "stop=END", "-O", "server=compatible")
        assert (done.returncode, done.stdout.strip()) == (0, "Hello"), done.stderr
        (sent,) = faults.served("POST /v1/responses")
        assert (sent.json()["seed"], sent.json()["stop"]) == (3, "END")
        refused = cli(env, "run", "-p", "openai", "-m", "tiny", "Hi", "--seed", "3")
    assert refused.returncode == 2
    one_error_line(refused, "UnsupportedError", "'seed'", "-O server=compatible")
