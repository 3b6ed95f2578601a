"""mypy --strict infers precise types through the public API (a Pydantic schema gives its model)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CASES = Path(__file__).parent / "typing" / "check_public_types.py"


def test_public_api_types_are_inferred_precisely(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--python-version", "3.11",
         "--cache-dir", str(tmp_path), str(CASES)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_is_caught(tmp_path: Path) -> None:
    """The check above can fail: a deliberately wrong assert_type is reported."""
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        "from typing import assert_type\n"
        "from pydantic import BaseModel\n"
        "import llmbackend\n"
        "class Summary(BaseModel):\n    title: str\n"
        "schema = llmbackend.StructuredOutput(pydantic_model=Summary)\n"
        "assert_type(llmbackend.get_response('openai', 'm', 'x', schema=schema), str)\n")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
         str(wrong)], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert 'not "str"  [assert-type]' in result.stdout


def _pyright(*paths: Path) -> subprocess.CompletedProcess[str]:
    # The pyright wrapper installed with the dev extra; the project's [tool.pyright] config
    # (strict on tests/typing) applies because it runs from the project root.
    return subprocess.run(
        [str(Path(sys.executable).parent / "pyright"), *map(str, paths)],
        capture_output=True, text=True, check=False, cwd=Path(__file__).parent.parent,
    )


def test_public_api_types_check_under_pyright_strict() -> None:
    """The same cases, as a pyright user in strict mode writes them: no casts, no unknowns."""
    result = _pyright(CASES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 errors" in result.stdout


def test_pyright_catches_a_wrong_expectation() -> None:
    """The pyright check above can fail: a deliberately wrong assert_type in tests/typing is
    reported (the file sits there so that the strict settings apply to it)."""
    wrong = CASES.parent / "_wrong_expectation.py"
    wrong.write_text(
        "from typing import assert_type\n"
        "from pydantic import BaseModel\n"
        "import llmbackend\n"
        "class Summary(BaseModel):\n    title: str\n"
        "schema = llmbackend.StructuredOutput(pydantic_model=Summary)\n"
        "assert_type(llmbackend.get_response('openai', 'm', 'x', schema=schema), str)\n")
    try:
        result = _pyright(wrong)
    finally:
        wrong.unlink()
    assert result.returncode == 1
    assert "assert_type" in result.stdout and '"Summary"' in result.stdout
