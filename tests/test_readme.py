"""The project README's own examples run as written (against the loopback emulator)."""

from __future__ import annotations

import re

from tests.conftest import ROOT
from tests.emulator import BatchPlan, OpenAIEmulator

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_examples_run_in_order(openai_env: OpenAIEmulator, capsys: object) -> None:
    assert len(BLOCKS) >= 3
    openai_env.batch_plan = BatchPlan(finish_after=0)  # the README's batch.wait() never sleeps
    namespace: dict[str, object] = {"__name__": "readme"}
    for block in BLOCKS:
        exec(compile(block, "<README.md>", "exec"), namespace)
    assert namespace["haiku"] == "Echo: Write a haiku about oceans."
    assert namespace["summary"].title == "example"  # type: ignore[attr-defined]
    sent = [request.json() for request in openai_env.requests if request.path == "/v1/responses"]
    assert sent[2]["instructions"] == "Answer in German."
    assert namespace["batch"].results() == [  # type: ignore[attr-defined]
        "Echo: Translate to German: Hello", "Echo: Translate to German: Thanks"]
    # the opening example once, the quickstart thrice, the typed face once (the batch: no sync call)
    assert len(sent) == 5
