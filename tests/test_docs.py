"""The docs say what the code does: every [delivery] key with its real default,
every token's data source, every route in the README's table."""

from __future__ import annotations

import re

import msgspec

from _fastrender._catalog import CANONICAL
from gateway.dispatch.settings import DeliverySettings
from gateway.http.app import ROUTES
from gateway.tokens import FILLED_BY
from tests.gateway_proc import ROOT


def _toml(value: object) -> str:
    if value is None:
        return "none"
    return msgspec.json.encode(value).decode().replace(",", ", ").replace(":", " = ")


def _rows(text: str) -> dict[str, list[str]]:
    """A markdown table's rows by their first cell (backticks dropped)."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_every_delivery_key_is_in_the_table_with_its_default() -> None:
    text = (ROOT / "docs" / "config.md").read_text()
    start = text.index("## `[delivery]`")
    section = text[start : text.index("\n## ", start)]
    rows = _rows(section)
    defaults = msgspec.to_builtins(DeliverySettings())
    assert set(rows) == set(DeliverySettings.__struct_fields__)
    for key in DeliverySettings.__struct_fields__:
        shown = rows[key][0]
        expected = _toml(defaults.get(key))
        assert shown in (expected, f"`{expected}`"), (key, shown, expected)


def test_every_token_says_which_data_fills_it() -> None:
    text = (ROOT / "docs" / "templates.md").read_text()
    section = text[text.index("## Which tokens need which data") : text.index("## How it is")]
    table, _, rest = section.partition("Nothing in a click or a conversion fills these")
    for token in CANONICAL:
        if token in FILLED_BY:
            if token.startswith("var") and token != "var1":
                continue  # var1 ... var20 share one row
            (row,) = [line for line in table.splitlines() if f"`{{{token}}}`" in line]
            assert FILLED_BY[token] in row, token
        else:
            assert f"`{{{token}}}`" in rest, token


def test_the_readme_lists_every_route() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## HTTP API") : readme.index("## Templates")]
    for route in ROUTES:
        if route.path.startswith("/console/"):
            continue  # the console's pages: one row for /console, each in docs/console.md
        assert re.search(rf"`[^`]*{re.escape(route.path)}[^`]*`", table), route.path
