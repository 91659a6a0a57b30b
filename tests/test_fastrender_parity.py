"""Properties: the twins agree byte for byte, and both agree with an independent oracle.

The oracle builds the expected URL from the template's *structure* (literal
text and known tokens) with ``urllib.parse.quote(..., safe="-._~")`` and its
own number formatting, so it shares no code with ``_fastrender``.
"""

from __future__ import annotations

import hashlib
import math
import urllib.parse
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from _fastrender import TemplateError
from _fastrender._catalog import CANONICAL, DIALECTS, MODIFIERS
from _fastrender._testing import FastrenderImplementation, c_available

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_PY = FastrenderImplementation(True).api


@pytest.fixture(scope="session")
def both(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    """(compiled, pure-Python); skipped where the compiled twin is off or missing."""
    if request.config.getoption("--no-c-extensions") or not c_available():
        pytest.skip("compiled _fastrender not in this run")
    return FastrenderImplementation(False).api, _PY


# ----------------------------------------------------------------------------- strategies

_ALL_NAMES = sorted({*DIALECTS["clickflare"], *DIALECTS["binom"]})
_ARG = st.text("abcXYZ019_.-", min_size=1, max_size=6)
_MOD_ARG = st.text("abAB01_.,=*-", min_size=1, max_size=8)


def _cased(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.upper(), name.title()])


_token_name = st.one_of(
    st.sampled_from(_ALL_NAMES).flatmap(_cased),
    st.builds(lambda n, a: f"{n}:{a}", st.sampled_from(["var", "tName", "VAR", "x"]), _ARG),
    st.text("abcdefxyz_.", min_size=1, max_size=8).map(lambda s: "v" + s),  # mostly unknown
)
_modifier = st.one_of(
    st.sampled_from([*MODIFIERS, "md6", "rwa", "UPPER"]),
    st.builds(lambda a: f"map:{a}", _MOD_ARG),
    st.builds(lambda m, a: f"{m}:{a}", st.sampled_from(MODIFIERS), _MOD_ARG),
)
_token = st.builds(
    lambda name, mods: "{" + name + "".join("|" + m for m in mods) + "}",
    _token_name,
    st.lists(_modifier, max_size=3),
)
_noise = st.text(
    st.one_of(st.sampled_from("{}|:/?#@&=%. "), st.characters(codec="utf-8")), max_size=6
)
_prefix = st.sampled_from(["https://ts.example/pb?x=", "https://", "http://u:p@h:1/", "", "//h/"])

templates = st.builds(
    lambda prefix, parts: prefix + "".join(parts),
    _prefix,
    st.lists(st.one_of(_token, _noise), max_size=8),
)

# Mostly well-formed tokens after a fixed host: templates that compile, to render.
_good_modifiers = st.builds(
    lambda mods, mapped, raw: [*mods, *mapped, *(["raw"] if raw else [])],
    st.lists(st.sampled_from(["md5", "sha1", "sha256", "upper", "lower"]), max_size=2),
    st.lists(_MOD_ARG.map(lambda a: f"map:{a}=x,{a}.={a},*=d"), max_size=1),
    st.booleans(),
)
_good_token = st.builds(
    lambda name, mods: "{" + name + "".join("|" + m for m in mods) + "}",
    st.one_of(
        st.sampled_from(_ALL_NAMES).flatmap(_cased),
        st.builds(lambda a: f"var:{a}", _ARG),
    ),
    _good_modifiers,
)
good_templates = st.builds(
    lambda parts: "https://ts.example/pb?" + "".join(parts),
    st.lists(st.one_of(_good_token, _good_token, _token, _noise), max_size=8),
)
values_of_any_kind = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.text(st.characters(codec="utf-8"), max_size=20),
    st.text(st.characters(), max_size=6),  # may hold lone surrogates
    st.integers(),
    st.floats(),
    st.decimals(),
    st.booleans(),
    st.binary(max_size=3),
)


# ----------------------------------------------------------------------------- twins agree


def _outcome(call: Any) -> tuple[str, object]:
    try:
        return "ok", call()
    except TemplateError as error:
        return "template-error", (str(error), error.position)
    except (TypeError, ValueError) as error:
        return type(error).__name__, str(error)


@SETTINGS
@given(
    template=templates,
    dialect=st.sampled_from(["clickflare", "binom"]),
    unknown=st.sampled_from(["error", "keep"]),
)
@example(template="https://{externalid}.ts.example/", dialect="clickflare", unknown="error")
@example(template="https://h/{externalid|raw|md5}", dialect="binom", unknown="keep")
def test_twins_compile_alike(both, template, dialect, unknown):
    c, py = both
    got_c = _outcome(lambda: c.compile_template(template, dialect=dialect, unknown=unknown).tokens)
    got_py = _outcome(
        lambda: py.compile_template(template, dialect=dialect, unknown=unknown).tokens
    )
    assert got_c == got_py


@SETTINGS
@given(template=good_templates, data=st.data())
def test_twins_render_alike(both, template, data):
    c, py = both
    try:
        plan_py = py.compile_template(template, unknown="keep")
    except TemplateError:
        return
    plan_c = c.compile_template(template, unknown="keep")
    rows = []
    for _ in range(data.draw(st.integers(1, 3), label="rows")):
        row = {key: data.draw(values_of_any_kind, label=key) for key in plan_py.tokens}
        row.setdefault("random", 12345)  # a drawn cache-buster differs by design
        if row["random"] is None:
            row["random"] = 0
        rows.append(row)
    for row in rows:
        assert _outcome(lambda r=row: plan_c.render(r)) == _outcome(lambda r=row: plan_py.render(r))
    assert _outcome(lambda: plan_c.render_many(rows)) == _outcome(lambda: plan_py.render_many(rows))


# ----------------------------------------------------------------------------- the oracle

_UNRESERVED = "-._~"
# |raw keeps every printable ASCII byte but these; quote() always keeps alnum and -._~.
_RAW_SAFE = "".join(chr(b) for b in range(0x21, 0x7F) if chr(b) not in '"<>\\^`{|}')


def _plain(text: str) -> str:
    """Scientific notation -> plain digits, by moving the decimal point by hand."""
    if "e" not in text and "E" not in text:
        return text
    sign = "-" if text.startswith("-") else ""
    mantissa, exponent = text.lstrip("-+").lower().split("e")
    whole, _, fraction = mantissa.partition(".")
    digits, point = whole + fraction, len(whole) + int(exponent)
    if point <= 0:
        out = "0." + "0" * -point + digits
    elif point >= len(digits):
        out = digits + "0" * (point - len(digits))
    else:
        out = digits[:point] + "." + digits[point:]
    return sign + out


def _oracle_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _plain(repr(value))
    if isinstance(value, Decimal):
        return _plain(str(value)) if "E" in str(value) else str(value)
    raise AssertionError(value)


def _oracle_modify(text: str, modifier: str) -> str:
    if modifier in ("md5", "sha1", "sha256"):
        return hashlib.new(modifier, text.encode()).hexdigest()
    if modifier == "upper":
        return "".join(ch.upper() if ch.isascii() else ch for ch in text)
    if modifier == "lower":
        return "".join(ch.lower() if ch.isascii() else ch for ch in text)
    raise AssertionError(modifier)


oracle_values = st.one_of(
    st.none(),
    st.text(st.characters(codec="utf-8"), max_size=12),
    st.text("ab&=/?# %+", max_size=6),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False),
)
_literal = st.text(st.characters(codec="utf-8", exclude_characters="{}"), max_size=8)
_canonical_plain = [name for name in CANONICAL if name != "random"]


@st.composite
def structured(draw: st.DrawFn) -> tuple[str, dict[str, object], str]:
    """A template, its values, and the URL the oracle expects."""
    template = expected = "https://ts.example/pb?" + draw(_literal)
    values: dict[str, object] = {}
    for _ in range(draw(st.integers(0, 5))):
        key = draw(st.sampled_from([*_canonical_plain, "var:zone", "var:Sub-1"]))
        mods = draw(
            st.lists(st.sampled_from(["md5", "sha1", "sha256", "upper", "lower"]), max_size=2)
        )
        raw = draw(st.booleans())
        value = values.setdefault(key, draw(oracle_values))
        spelt = f"tName:{key[4:]}" if key.startswith("var:") and draw(st.booleans()) else key
        template += "{" + spelt + "".join("|" + m for m in mods) + ("|raw" if raw else "") + "}"
        text = _oracle_text(value)
        if value is not None:
            for mod in mods:
                text = _oracle_modify(text, mod)
        expected += urllib.parse.quote(text, safe=_RAW_SAFE if raw else _UNRESERVED)
        literal = draw(_literal)
        template += literal
        expected += literal
    return template, values, expected


@pytest.mark.parametrize("value", [1e-07, 1e20, 1.5e16, -2.5e-10, 5e-324, 1.7976931348623157e308])
def test_oracle_plain_notation_agrees_with_decimal(value):
    assert _plain(repr(value)) == format(Decimal(repr(value)), "f")


@SETTINGS
@given(case=structured())
@example(
    case=("https://ts.example/pb?{payout}", {"payout": 1e-07}, "https://ts.example/pb?0.0000001")
)
def test_matches_the_oracle(fastrender_module, case):
    template, values, expected = case
    plan = fastrender_module.compile_template(template)
    assert plan.render(values) == expected
    assert plan.render_many([values, values]) == [expected, expected]


@SETTINGS
@given(value=st.floats(allow_nan=False, allow_infinity=False))
def test_floats_are_shortest_round_trip_in_plain_notation(fastrender_module, value):
    plan = fastrender_module.compile_template("https://ts.example/?p={payout}")
    text = plan.render({"payout": value})[len("https://ts.example/?p=") :]
    assert "e" not in text.lower()
    assert float(text) == value or (math.isclose(value, 0) and float(text) == 0)
    assert text == _plain(repr(value))


_EDGE_FLOATS = [
    1e-4,
    1.0000000000000001e-4,
    9.999999999999999e-5,
    0.1 + 0.2,
    1 / 3,
    2 / 3,
    0.5,
    1.0,
    -1.0,
    999999999999999.9,
    1e15,
    9.999999999999998e14,
    2.0**50,
    2.0**50 + 0.5,
    2.0**52 + 1,
    2.0**53,
    2.0**53 + 2,
    1125899906842623.9,
    4503599627370495.5,
    123.456,
    1.005,
    2.675,
    0.07,
    1.15,
    100.0,
    1234567.0,
    5e-5,
    12345678901234.56,
    0.000123,
    9007199254740993.0,
    1.7976931348623157e308,
    2.2250738585072014e-308,
    5e-324,
]


@pytest.mark.parametrize("value", [*_EDGE_FLOATS, *(-v for v in _EDGE_FLOATS)])
def test_float_edges(fastrender_module, value):
    plan = fastrender_module.compile_template("{payout}")
    assert plan.render({"payout": value}) == _plain(repr(value))


@SETTINGS
@given(
    value=st.one_of(
        st.floats(min_value=1e-4, max_value=1e15),
        st.integers(-(10**9), 10**9).flatmap(lambda n: st.integers(0, 12).map(lambda k: n / 10**k)),
    )
)
def test_fast_float_range(fastrender_module, value):
    plan = fastrender_module.compile_template("{payout}")
    assert plan.render({"payout": value}) == _plain(repr(value))


def test_decimal_shaped_float_sweep(fastrender_module):
    """Payout-like floats and their neighbours: the compiled path's home ground."""
    plan = fastrender_module.compile_template("{payout}")
    mismatches = []
    for k in range(7):
        for m in range(0, 30_001, 13):
            x = m / 10**k
            for value in (x, math.nextafter(x, math.inf), math.nextafter(x, 0.0), -x):
                if plan.render({"payout": value}) != _plain(repr(value)):
                    mismatches.append(value)
    assert mismatches == []
