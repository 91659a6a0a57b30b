"""docs/sources.md is generated from the catalog and must be kept current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gateway.sources import catalog, docs

PAGE = Path(__file__).resolve().parent.parent / "docs" / "sources.md"


def test_committed_page_is_up_to_date() -> None:
    assert PAGE.read_text("utf-8") == docs.render(), (
        "docs/sources.md is stale: python -m gateway.sources.docs > docs/sources.md"
    )


def test_page_lists_every_preset_with_its_sources() -> None:
    page = docs.render()
    for name in catalog.names():
        preset = catalog.get(name)
        assert f"### {name}" in page
        assert preset.docs[0].replace("|", "\\|") in page
    assert "## Adding a network" in page


def test_module_entry_point_prints_the_page() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway.sources.docs"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout == docs.render()


def test_table_cells_escape_pipes() -> None:
    assert docs._cell("{a|md5}") == "{a\\|md5}"
