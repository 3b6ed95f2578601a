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
                                  "retrying.py", "schemas.py", "messages.py", "streams.py",
                                  "batching.py", "settings.py",
                                  "checks.py", "redact.py", "jobs/saved.py")),
])
#: Imports that mean network, environment, clock, processes or an ML runtime / vendor SDK.
FORBIDDEN_IN_PURE = {
    "socket", "ssl", "http", "urllib", "httpx", "httpx2", "httpcore", "httpcore2", "requests",
    "aiohttp", "asyncio", "os", "subprocess", "threading", "time", "random", "logging",
    "openai", "anthropic", "google", "torch", "transformers", "vllm", "mlx", "mlx_lm",
    "llmbackend.api", "llmbackend.transport", "llmbackend.engines", "llmbackend.logs",
    "llmbackend.jobs", "llmbackend.backends", "llmbackend.cli", "llmbackend.fanout",
    "llmbackend.progress", "tempfile", "secrets",
}
HEAVY = ["httpx2", "httpcore2", "aiohttp", "jsonschema", "cattrs", "pydantic", "openai",
         "anthropic",
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


def test_the_sync_api_loads_no_asyncio() -> None:
    # asyncio pulls in socket, ssl, subprocess and more (about 15 ms): only the async faces
    # load it, on their first call.
    loaded = _modules_after("from llmbackend import get_response, generate, client, "
                            "create_batch, get_batch, restore_batch, Batch, StructuredOutput")
    assert [m for m in loaded if m.split(".")[0] in {"asyncio", "concurrent"}] == []


def test_sync_calls_never_load_the_async_stack() -> None:
    # a whole call, a stream and a fan-out on the sync face, against the emulator: httpx2 is
    # loaded, aiohttp (the async face's stack) is not
    loaded = _modules_after(
        "import sys\nsys.path.insert(0, '.')\nfrom tests.emulator import OpenAIEmulator, "
        "API_KEY\nimport llmbackend\ne = OpenAIEmulator()\ne.start()\n"
        "c = llmbackend.client('openai', 'm', api_key=API_KEY, base_url=e.base_url)\n"
        "assert c.get_response('a') and list(c.map(['b', 'c'])) and ''.join(c.stream('d'))\n"
        "c.close()")
    assert "httpx2" in loaded
    assert [m for m in loaded if m.split(".")[0] in {"aiohttp", "yarl", "multidict"}] == []


def test_bare_import_loads_almost_nothing() -> None:
    loaded = _modules_after("import llmbackend")
    assert [m for m in loaded if m.startswith("llmbackend")] == ["llmbackend"]
    assert "attr" not in loaded
    assert "returns" not in loaded


# --- the floors: what each module may import ------------------------------------------------------

#: The package's floors, lowest first. A module imports only modules of its own floor or of a
#: lower one (docs/design.md draws the same picture): the pure core knows nothing of the shell;
#: the backends know nothing of ``api`` or the command line; ``api`` knows nothing of the CLI.
FLOORS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("retrying", "errors", "types", "schemas", "messages", "streams", "checks",
              "convert", "batching",
              "pipeline", "settings", "redact", "providers", "providers.*", "jobs.saved")),
    ("effects", ("logs", "progress", "aio", "transport", "engines", "fanout", "streaming")),
    ("jobs", ("jobs", "jobs.*")),
    ("backends", ("backends",)),
    ("api", ("api",)),
    ("facade", ("",)),
    ("cli", ("cli", "cli.*", "__main__")),
]
#: What the command line may use of the library: the facade and a few pure helpers (whether a
#: provider is local, the saved handle's summary, errors and values), never the shell inside.
CLI_MAY_IMPORT = ("", "errors", "types", "messages", "batching", "providers", "jobs.saved",
                  "jobs.handle",
                  "jobs", "api", "checks")


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE).with_suffix("")
    parts = [part for part in relative.parts if part != "__init__"]
    return ".".join(parts)


def _floor(module: str) -> int:
    for index, (_, members) in enumerate(FLOORS):
        for member in members:
            if module == member or (member.endswith(".*") and module.startswith(member[:-1])):
                return index
    raise AssertionError(f"llmbackend.{module} is on no floor: add it to FLOORS")


def _our_imports(path: Path) -> Iterator[tuple[str, bool]]:
    """The llmbackend modules ``path`` imports (relative names, ``""`` for the facade), with
    whether the import runs (``False`` under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and \
                node.test.id == "TYPE_CHECKING":
            typing_only |= {id(child) for child in ast.walk(node)}
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "llmbackend":  # from llmbackend import fanout, pipeline
                names = [f"llmbackend.{alias.name}" for alias in node.names
                         if (PACKAGE / alias.name).exists()
                         or (PACKAGE / f"{alias.name}.py").exists()] or ["llmbackend"]
        for name in names:
            if name == "llmbackend" or name.startswith("llmbackend."):
                yield name.removeprefix("llmbackend").removeprefix("."), id(node) not in typing_only


ALL_MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", ALL_MODULES, ids=lambda p: _module_name(p) or "llmbackend")
def test_no_module_imports_a_higher_floor(path: Path) -> None:
    module = _module_name(path)
    floor = _floor(module)
    higher = sorted({name for name, _ in _our_imports(path) if _floor(name) > floor})
    assert higher == [], (f"llmbackend.{module} ({FLOORS[floor][0]}) imports {higher}, on a "
                          "higher floor")


@pytest.mark.parametrize("path", sorted((PACKAGE / "cli").rglob("*.py")), ids=lambda p: p.name)
def test_the_command_line_uses_only_the_public_library(path: Path) -> None:
    used = sorted({name for name, _ in _our_imports(path) if _floor(name) < _floor("cli")})
    assert [name for name in used if name not in CLI_MAY_IMPORT] == [], used


def test_the_import_graph_has_no_circle() -> None:
    graph = {_module_name(path): {name for name, runs in _our_imports(path) if runs}
             for path in ALL_MODULES}
    graph[""] = set()  # the facade imports everything, lazily; nothing circles through it
    done: set[str] = set()

    def visit(module: str, trail: tuple[str, ...]) -> None:
        assert module not in trail, f"import circle: {' -> '.join((*trail, module))}"
        if module in done:
            return
        for name in sorted(graph.get(module, set()) - {module}):
            if name.startswith(f"{module}.") or module.startswith(f"{name}."):
                continue  # a package and its own modules
            visit(name, (*trail, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())


@pytest.mark.parametrize("path", [p for p in ALL_MODULES if p.name != "__main__.py"],
                         ids=lambda p: _module_name(p) or "llmbackend")
def test_every_module_says_what_it_exports(path: Path) -> None:
    tree = ast.parse(path.read_text())
    declared = [node for node in tree.body if isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)]
    assert declared, f"{path.relative_to(PACKAGE)} has no __all__"
    names = ast.literal_eval(declared[0].value)
    defined = {node.name for node in ast.walk(tree)
               if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
    defined |= {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign | ast.AnnAssign)
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                if isinstance(t, ast.Name)}
    defined |= {alias.asname or alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import | ast.ImportFrom) for alias in node.names}
    assert [name for name in names if name not in defined] == [], "exports names it lacks"
