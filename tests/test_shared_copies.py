"""The copies in tests/data are the shared originals, unedited."""

from __future__ import annotations

import pytest

from tests.conftest import DATA, SHARED

PAIRS = [
    *((p, SHARED / "fixtures" / p.relative_to(DATA / "fixtures"))
      for p in sorted((DATA / "fixtures").rglob("*")) if p.is_file()),
    (DATA / "specs" / "openai-openapi.yaml", SHARED / "specs" / "openai-openapi.yaml"),
    (DATA / "seed" / "README.md", SHARED / "seed" / "000_b8a3799567778bb6.txt"),
    (DATA / "seed" / "design-card.md", SHARED / "seed" / "design-card.md"),
]


@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared beside this checkout (a clean clone)")
@pytest.mark.parametrize(("copy", "original"), PAIRS, ids=lambda p: p.name)
def test_copy_is_identical_to_the_shared_original(copy, original) -> None:  # type: ignore[no-untyped-def]
    assert copy.read_bytes() == original.read_bytes()


def test_every_shared_fixture_was_copied() -> None:
    if not SHARED.is_dir():
        pytest.skip("no ../shared beside this checkout (a clean clone)")
    originals = {p.relative_to(SHARED / "fixtures") for p in (SHARED / "fixtures").rglob("*.json")}
    copies = {p.relative_to(DATA / "fixtures") for p in (DATA / "fixtures").rglob("*.json")}
    assert originals == copies
