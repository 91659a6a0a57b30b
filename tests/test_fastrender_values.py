"""Values: number formatting, encoding, modifiers, bad input, and the plan object."""

from __future__ import annotations

import hashlib
import math
import pickle
import re
import types
import urllib.parse
from collections.abc import Iterator, Mapping
from decimal import Decimal

import pytest

BASE = "https://ts.example/pb?v="


def _render(module, token: str, value: object, key: str | None = None) -> str:
    plan = module.compile_template(BASE + token)
    (slot_key,) = plan.tokens
    text = plan.render({key or slot_key: value})
    assert text.startswith(BASE)
    return text[len(BASE) :]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"),
        (-17, "-17"),
        (2**63 - 1, "9223372036854775807"),
        (-(2**63), "-9223372036854775808"),
        (2**64 + 1, "18446744073709551617"),
        (-(10**30), "-1000000000000000000000000000000"),
        (1.5, "1.5"),
        (0.1, "0.1"),
        (-0.0, "-0.0"),
        (1e-07, "0.0000001"),
        (1e20, "100000000000000000000"),
        (1e16, "10000000000000000"),
        (1.5e16, "15000000000000000"),
        (1.2345e-5, "0.000012345"),
        (5e-324, "0." + "0" * 323 + "5"),
        (123456789.125, "123456789.125"),
        (Decimal("1.50"), "1.50"),
        (Decimal("1E+2"), "100"),
        (Decimal("-0.000001"), "-0.000001"),
        (Decimal("1E-9"), "0.000000001"),
        (Decimal("0"), "0"),
        ("", ""),
        (None, ""),
    ],
)
def test_number_and_plain_values(fastrender_module, value, expected):
    assert _render(fastrender_module, "{payout}", value) == expected


def test_int_and_float_subclasses_render_as_numbers(fastrender_module):
    class Cents(int):
        def __repr__(self) -> str:
            return "Cents!"

        __str__ = __repr__

    class Money(float):
        def __repr__(self) -> str:
            return "Money!"

    class Text(str):
        def __str__(self) -> str:
            return "Text!"

    assert _render(fastrender_module, "{payout}", Cents(250)) == "250"
    assert _render(fastrender_module, "{payout}", Money(2.5)) == "2.5"
    assert _render(fastrender_module, "{payout}", Text("a b")) == "a%20b"


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, Decimal("NaN"), Decimal("-Infinity"), Decimal("sNaN")]
)
def test_non_finite_numbers_raise_value_error(fastrender_module, value):
    with pytest.raises(ValueError, match="not a finite number"):
        _render(fastrender_module, "{payout}", value)


@pytest.mark.parametrize("value", [True, False])
def test_bool_is_a_type_error(fastrender_module, value):
    with pytest.raises(TypeError, match="bool is not a renderable value"):
        _render(fastrender_module, "{payout}", value)


@pytest.mark.parametrize("value", [b"abc", ["a"], {"a": 1}, object(), 1j, bytearray(b"x")])
def test_other_types_are_a_type_error(fastrender_module, value):
    with pytest.raises(TypeError, match="expected str, int, float, Decimal or None"):
        _render(fastrender_module, "{payout}", value)


@pytest.mark.parametrize("token", ["{var1}", "{var1|raw}", "{var1|md5}", "{var1|upper}"])
@pytest.mark.parametrize("value", ["\ud800", "ok\udfffok", "é\udbff"])
def test_lone_surrogate_is_a_value_error(fastrender_module, token, value):
    with pytest.raises(ValueError):  # noqa: PT011 - UnicodeEncodeError is the documented ValueError
        _render(fastrender_module, token, value)


def test_bad_value_error_names_the_token(fastrender_module):
    plan = fastrender_module.compile_template(BASE + "{var:zone}")
    with pytest.raises(TypeError, match=re.escape("{var:zone}")):
        plan.render({"var:zone": True})


def test_every_byte_outside_unreserved_is_encoded(fastrender_module):
    value = "".join(chr(i) for i in range(1, 0x80)) + "é€😀\u0000"
    expected = urllib.parse.quote(value, safe="-._~")
    assert _render(fastrender_module, "{var1}", value) == expected
    assert re.fullmatch(r"(?:[A-Za-z0-9\-._~]|%[0-9A-F]{2})*", expected)


@pytest.mark.parametrize("fill", ["a", "&", "é", "😀"])
def test_one_megabyte_values(fastrender_module, fill):
    value = fill * (1 << 20)
    plan = fastrender_module.compile_template(BASE + "{var1}&x={var2}")
    out = plan.render({"var1": value, "var2": "tail"})
    assert out == BASE + urllib.parse.quote(value, safe="-._~") + "&x=tail"


def test_one_megabyte_value_in_a_batch(fastrender_module):
    plan = fastrender_module.compile_template(BASE + "{var1}")
    big = {"var1": "x y" * 400_000}
    small = {"var1": "s"}
    out = plan.render_many([small, big, small])
    assert out == [BASE + "s", BASE + "x%20y" * 400_000, BASE + "s"]


def test_non_string_keys_are_not_values(fastrender_module):
    plan = fastrender_module.compile_template(BASE + "{externalid}&n={var1}")
    values = {b"externalid": "x", 1: "y", ("var1",): "z", None: "w", 1.5: "v"}
    assert plan.render(values) == BASE + "&n="


def test_key_whose_comparison_fails_propagates(fastrender_module):
    class Clash:
        def __hash__(self) -> int:
            return hash("externalid")

        def __eq__(self, other: object) -> bool:
            raise RuntimeError("comparison failed")

    plan = fastrender_module.compile_template(BASE + "{externalid}")
    with pytest.raises(RuntimeError, match="comparison failed"):
        plan.render({Clash(): "x"})


class _Lazy(Mapping[str, object]):
    """A read-only mapping that is not a dict."""

    def __init__(self, data: dict[str, object]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> object:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


@pytest.mark.parametrize(
    "wrap", [dict, types.MappingProxyType, _Lazy, lambda d: type("D", (dict,), {})(d)]
)
def test_any_mapping_works(fastrender_module, wrap):
    plan = fastrender_module.compile_template(BASE + "{externalid}&p={payout}&m={var2}")
    assert plan.render(wrap({"externalid": "a b", "payout": 2})) == BASE + "a%20b&p=2&m="


@pytest.mark.parametrize("values", [None, ["externalid"], "externalid", 3])
def test_values_must_be_a_mapping(fastrender_module, values):
    plan = fastrender_module.compile_template(BASE + "{externalid}")
    with pytest.raises(TypeError, match="values must be a mapping"):
        plan.render(values)
    with pytest.raises(TypeError, match="values must be a mapping"):
        plan.render_many([{}, values])


# ----------------------------------------------------------------------------- modifiers


@pytest.mark.parametrize(
    ("token", "value", "expected"),
    [
        ("{var1|md5}", "abc", hashlib.md5(b"abc").hexdigest()),
        ("{var1|sha1}", "abc", hashlib.sha1(b"abc").hexdigest()),
        ("{var1|sha256}", "é", hashlib.sha256("é".encode()).hexdigest()),
        ("{var1|md5}", 12, hashlib.md5(b"12").hexdigest()),
        ("{var1|sha1}", 1e-07, hashlib.sha1(b"0.0000001").hexdigest()),
        ("{var1|md5}", "", hashlib.md5(b"").hexdigest()),
        ("{var1|upper}", "abc-é-ß", "ABC-%C3%A9-%C3%9F"),
        ("{var1|lower}", "ABC-É", "abc-%C3%89"),
        ("{var1|upper|md5}", "abc", hashlib.md5(b"ABC").hexdigest()),
        ("{var1|md5|upper}", "abc", hashlib.md5(b"abc").hexdigest().upper()),
        ("{var1|map:approved=1,rejected=0,*=2}", "approved", "1"),
        ("{var1|map:approved=1,rejected=0,*=2}", "rejected", "0"),
        ("{var1|map:approved=1,rejected=0,*=2}", "other", "2"),
        ("{var1|map:approved=1,rejected=0}", "on hold", "on%20hold"),
        ("{var1|map:approved=1}", "Approved", "Approved"),
        ("{var1|map:a=1,a=2}", "a", "1"),
        ("{var1|map:a=,*=x}", "a", ""),
        ("{var1|map:1.5=high}", Decimal("1.5"), "high"),
        ("{var1|lower|map:approved=ok}", "APPROVED", "ok"),
        ("{var1|map:a=x.y}", "a", "x.y"),
        ("{var1|raw}", "a%20b&c=d e", "a%20b&c=d%20e"),
        ("{var1|raw}", "/p?q=1#f", "/p?q=1#f"),
        ("{var1|raw}", '"<>\\^`{|}', "%22%3C%3E%5C%5E%60%7B%7C%7D"),
        ("{var1|raw}", "\t\r\n\x00\x7f é", "%09%0D%0A%00%7F%20%C3%A9"),
        ("{var1|upper|raw}", "a&b", "A&B"),
    ],
)
def test_modifiers(fastrender_module, token, value, expected):
    assert _render(fastrender_module, token, value) == expected


@pytest.mark.parametrize(
    "token", ["{var1|md5}", "{var1|map:*=2}", "{var1|upper|map:a=1,*=z}", "{var1|raw}"]
)
@pytest.mark.parametrize("present", [False, True])
def test_missing_value_stays_empty_through_modifiers(fastrender_module, token, present):
    plan = fastrender_module.compile_template(BASE + token)
    assert plan.render({"var1": None} if present else {}) == BASE


def test_modifiers_keep_canonical_tokens(fastrender_module):
    plan = fastrender_module.compile_template(
        "https://ts.example/?s={status|map:approved=1,*=0}&h={external_id|md5}&r={tName:cb|raw}"
    )
    assert plan.tokens == ("conversion.status", "externalid", "var:cb")


# ----------------------------------------------------------------------------- random


def test_random_draws_a_fresh_number_per_render(fastrender_module):
    plan = fastrender_module.compile_template("https://ts.example/ct?cb={random}&c={externalid}")
    seen = set()
    for _ in range(8):
        out = plan.render({"externalid": "c"})
        match = re.fullmatch(r"https://ts\.example/ct\?cb=(\d+)&c=c", out)
        assert match, out
        assert 0 <= int(match[1]) < 2**32
        seen.add(match[1])
    assert len(seen) > 1
    many = plan.render_many([{"externalid": "c"}] * 8)
    assert len(set(many)) > 1


def test_random_uses_a_given_value(fastrender_module):
    plan = fastrender_module.compile_template("https://ts.example/ct?cb={random}&h={random|md5}")
    assert plan.render({"random": 7}) == (
        f"https://ts.example/ct?cb=7&h={hashlib.md5(b'7').hexdigest()}"
    )
    assert plan.tokens == ("random", "random")


def test_random_with_modifiers_is_still_drawn(fastrender_module):
    plan = fastrender_module.compile_template("https://ts.example/?h={random|sha1}")
    assert re.fullmatch(r"https://ts\.example/\?h=[0-9a-f]{40}", plan.render({}))


# ----------------------------------------------------------------------------- the plan


def test_plan_attributes(fastrender_module):
    template = "https://ts.example/pb?a={t1}&b={var1}&c={T1}&d={x y}"
    plan = fastrender_module.compile_template(template)
    assert plan.template == template
    assert plan.tokens == ("var1", "var1", "var1")
    assert isinstance(plan.tokens, tuple)
    assert repr(plan) == f"<Plan {template!r}>"


def test_template_str_subclass_is_stored_as_str(fastrender_module):
    class Sub(str):
        pass

    plan = fastrender_module.compile_template(Sub("https://ts.example/"))
    assert type(plan.template) is str
    assert type(plan.render({})) is str


def test_template_without_tokens_comes_back_as_is(fastrender_module):
    template = "https://ts.example/pb?x=%zz&y={ not a token }&é=ü"
    plan = fastrender_module.compile_template(template)
    assert plan.tokens == ()
    assert plan.render({"externalid": "x"}) == template
    assert plan.render_many([{}, {}]) == [template, template]


def test_literal_text_is_copied_byte_for_byte(fastrender_module):
    template = 'https://ts.example/ü/%7e%zz?a=b c&d="{"x"}"&e={externalid}#frag{}'
    plan = fastrender_module.compile_template(template)
    out = plan.render({"externalid": "é"})
    assert out == template.replace("{externalid}", "%C3%A9")


def test_literal_text_glued_to_tokens(fastrender_module):
    plan = fastrender_module.compile_template(
        "https://a.mgid.com/postback?c={externalid}&e={conversion.status}123456&r={payout}"
    )
    out = plan.render({"externalid": "k", "conversion.status": "sale", "payout": 0.25})
    assert out == "https://a.mgid.com/postback?c=k&e=sale123456&r=0.25"


def test_render_many_keeps_order_and_accepts_any_iterable(fastrender_module):
    plan = fastrender_module.compile_template(BASE + "{var1}")
    rows = [{"var1": str(i) + " "} for i in range(50)]
    expected = [plan.render(row) for row in rows]
    assert plan.render_many(rows) == expected
    assert plan.render_many(tuple(rows)) == expected
    assert plan.render_many(iter(rows)) == expected
    assert plan.render_many(row for row in rows) == expected
    assert plan.render_many([]) == []


def test_render_many_stops_at_the_first_bad_row(fastrender_module):
    plan = fastrender_module.compile_template(BASE + "{var1}")
    with pytest.raises(ValueError, match="not a finite number"):
        plan.render_many([{"var1": 1}, {"var1": math.nan}])


def test_plan_attributes_are_read_only(fastrender_module):
    plan = fastrender_module.compile_template(BASE + "{var1}")
    with pytest.raises(AttributeError):
        plan.template = "x"
    with pytest.raises(AttributeError):
        plan.tokens = ()


@pytest.mark.parametrize("dialect", ["clickflare", "binom"])
def test_plan_pickles_with_its_dialect(fastrender_module, dialect):
    plan = fastrender_module.compile_template(
        "https://ts.example/?c={country}&s={status|map:a=1,*=0}&r={var:r|raw}", dialect=dialect
    )
    again = pickle.loads(pickle.dumps(plan))
    assert type(again) is type(plan)
    assert (again.template, again.tokens) == (plan.template, plan.tokens)
    values = {"country": "DE", "countryname": "Germany", "conversion.status": "a", "var:r": "x&y"}
    assert again.render(values) == plan.render(values)
