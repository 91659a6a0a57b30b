"""The leftover-macro finder: every documented style, nothing of ours."""

from __future__ import annotations

import pytest

from gateway.sources.macros import find_leftover_macros

STYLES = [
    "${SUBID}",
    "{click_id}",
    "{{ctoken}}",
    "{:click_id}",
    "[CLICK_ID]",
    "[clickid]",
    "%guid%",
    "##SUB_ID_SHORT(action)##",
    "#s2#",
    "@@CLICK-ID@@",
    "MFOXCLICKID",
    "startapp_click_id_placeholder",
    "impressionId",
    "CLICK_ID",
    "REPLACE",
    "{conversions_tracking}",
    "[[subid]]",
    "${TRACKING_ID}",
    "_~click_id~_",
    "{cost}",
    "%insertyourtoken%",
    "[=SID=]",
    "{!tscode!}",
    "{CLICKID}",
    "{clickId}",
]


@pytest.mark.parametrize("macro", STYLES)
def test_each_style_is_found_once(macro: str) -> None:
    assert find_leftover_macros(f"https://t.example/pb?cid={macro}&p=1") == [macro]


def test_in_order_of_appearance() -> None:
    url = "https://t.example/pb?a=[clickid]&b=${SUBID}&c={{ctoken}}&d=[clickid]"
    assert find_leftover_macros(url) == ["[clickid]", "${SUBID}", "{{ctoken}}", "[clickid]"]


def test_dollar_brace_is_not_reported_twice() -> None:
    assert find_leftover_macros("https://t.example/?v=${SUBID}") == ["${SUBID}"]


@pytest.mark.parametrize(
    "url",
    [
        "https://t.example/pb?cid={externalid}&p={payout}&tx={transaction.id}",
        "https://t.example/pb?z={var:zoneid}&t={tName:zoneid}&r={random}",
        "https://t.example/pb?h={externalid|md5}&s={conversion.status|map:approved=1,*=0}",
        "https://t.example/pb?u={var:u|raw}&c={currency}&e={conversion.type}",
        "https://t.example/a%20b?q=caf%C3%A9&x=%2Fab%2F&y=100%25",
        'https://t.example/pb?j={"a":1}&k={ }&l={}',
        "https://t.example/#section",
    ],
)
def test_no_false_positives(url: str) -> None:
    assert find_leftover_macros(url) == []


def test_bare_word_needs_word_boundaries() -> None:
    assert find_leftover_macros("https://t.example/?x=MY_CLICK_IDS") == []
    assert find_leftover_macros("https://t.example/?click-id=CLICK_ID") == ["CLICK_ID"]
