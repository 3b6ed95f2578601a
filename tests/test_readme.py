"""The project README's own examples run as written (against the loopback emulator)."""

from __future__ import annotations

import re

from tests.conftest import ROOT
from tests.emulator import OpenAIEmulator

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_examples_run_in_order(openai_env: OpenAIEmulator, capsys: object) -> None:
    assert len(BLOCKS) >= 3
    namespace: dict[str, object] = {"__name__": "readme"}
    for block in BLOCKS:
        exec(compile(block, "<README.md>", "exec"), namespace)
    assert namespace["haiku"] == "Echo: Write a haiku about oceans."
    assert namespace["summary"].title == "example"  # type: ignore[attr-defined]
    sent = [request.json() for request in openai_env.requests]
    assert sent[2]["instructions"] == "Answer in German."
    assert len(sent) == len(BLOCKS) + 2  # every block called the provider, the quickstart thrice
