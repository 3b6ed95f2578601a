"""Architecture boundaries: pure modules stay pure, and ``import llmbackend`` stays light."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import llmbackend

PACKAGE = Path(llmbackend.__file__).parent
PURE_MODULES = sorted([
    *(PACKAGE / "providers").glob("*.py"),
    *(PACKAGE / name for name in ("types.py", "errors.py", "convert.py", "pipeline.py",
                                  "retrying.py", "schemas.py", "batching.py")),
])
#: Imports that mean network, environment, clock, processes or an ML runtime / vendor SDK.
FORBIDDEN_IN_PURE = {
    "socket", "ssl", "http", "urllib", "httpx", "httpx2", "httpcore", "httpcore2", "requests",
    "aiohttp", "asyncio", "os", "subprocess", "threading", "time", "random", "logging",
    "openai", "anthropic", "google", "torch", "transformers", "vllm", "mlx", "mlx_lm",
    "llmbackend.api", "llmbackend.transport", "llmbackend.engines", "llmbackend.logs",
    "llmbackend.jobs", "tempfile", "secrets",
}
HEAVY = ["httpx2", "httpcore2", "jsonschema", "cattrs", "pydantic", "openai", "anthropic",
         "google.genai", "torch", "transformers", "vllm", "mlx", "numpy",
         # the command line's and the progress bar's: never loaded by the library itself
         "click", "tqdm"]


def _imports(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


@pytest.mark.parametrize("path", PURE_MODULES, ids=lambda p: p.name)
def test_pure_modules_import_no_effectful_library(path: Path) -> None:
    tree = ast.parse(path.read_text())
    bad = [name for name in _imports(tree)
           if any(name == root or name.startswith(root + ".") for root in FORBIDDEN_IN_PURE)]
    assert bad == [], f"{path.name} imports {bad}"
    names = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)} | {
        node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert not names & {"environ", "getenv", "sleep", "urlopen"}, path.name
    assert (tree.body and isinstance(tree.body[0], ast.Expr)
            and str(ast.literal_eval(tree.body[0].value)).startswith("Pure")), \
        f"{path.name} must open with a docstring that says it is pure"


class _Tripwire(dict[str, str]):
    def __getitem__(self, key: str) -> str:
        raise AssertionError(f"a pure function read the environment variable {key!r}")

    def get(self, key: str, default: Any = None) -> Any:
        raise AssertionError(f"a pure function read the environment variable {key!r}")

    def __contains__(self, key: object) -> bool:
        raise AssertionError(f"a pure function looked for the environment variable {key!r}")


def test_builders_and_parsers_read_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import BaseModel

    from llmbackend.convert import config_from
    from llmbackend.pipeline import generate
    from llmbackend.providers.openai import PROVIDER
    from llmbackend.types import GenerationRequest, StructuredOutput, WireRequest, WireResponse
    from tests.emulator import default_answer

    class Item(BaseModel):
        title: str

    schema = StructuredOutput(pydantic_model=Item)
    config = config_from({"temperature": 0.5, "max_tokens": 64})

    def send(wire: WireRequest) -> Any:
        from returns.result import Success
        return Success(WireResponse(status=200, body=json.dumps(default_answer(wire.json))
                                    .encode()))

    monkeypatch.setattr(os, "environ", _Tripwire())
    request = GenerationRequest(model="gpt-4o-mini", input="hi", config=config, schema=schema)
    assert generate(PROVIDER, request, send).unwrap().parsed == Item(title="example")


def _modules_after(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys, json\n"
                          f"print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("code", [
    "import llmbackend",
    "from llmbackend import get_response, generate, client, StructuredOutput, GenerationConfig, "
    "LLMError",
    "import llmbackend.providers.openai, llmbackend.pipeline",
    # A whole client, and a fan-out made (not run): the API, fanout and progress modules load.
    "import llmbackend\nc = llmbackend.client('openai', 'm', api_key='k', "
    "base_url='http://127.0.0.1:9')\nc.map(['a'])",
])
def test_import_loads_no_heavy_dependency(code: str) -> None:
    loaded = _modules_after(code)
    assert [m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY] == []


def test_bare_import_loads_almost_nothing() -> None:
    loaded = _modules_after("import llmbackend")
    assert [m for m in loaded if m.startswith("llmbackend")] == ["llmbackend"]
    assert "attr" not in loaded
    assert "returns" not in loaded
