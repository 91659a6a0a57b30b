"""Network macros left in a pasted postback URL: the commonest silent loss.

A network's docs show its own placeholders (``${SUBID}``, ``[clickid]``,
``{{ctoken}}``, ``%CLICKID%``, ``{conversions_tracking}``...).  Left in a
postback they are sent literally and the conversion is lost; ``check`` warns.
"""

from __future__ import annotations

import re

__all__ = ("find_leftover_macros",)

_PATTERNS = (
    re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}"),  # ${SUBID}
    re.compile(r"\{\{[A-Za-z_][A-Za-z0-9_.]*\}\}"),  # {{clickid}}
    re.compile(r"\{:[A-Za-z_][A-Za-z0-9_]*\}"),  # {:click_id}
    re.compile(r"\[[A-Za-z_][A-Za-z0-9_]*\]"),  # [CLICK_ID]
    re.compile(r"%[A-Za-z_][A-Za-z0-9_]*%"),  # %CLICKID%
    re.compile(r"##[A-Za-z_][A-Za-z0-9_()]*##"),  # ##SUB_ID_SHORT(action)##
    re.compile(r"@@[A-Za-z_][A-Za-z0-9_\-]*@@"),  # @@CLICK-ID@@
    re.compile(r"#[A-Za-z][A-Za-z0-9_]*#"),  # #s2#
    re.compile(r"\b(?:MFOXCLICKID|startapp_click_id_placeholder|impressionId|CLICK_ID|REPLACE)\b"),
)
# Network macros that look like our own {token} but are not in our catalog.
_NETWORK_BRACE_MACROS = re.compile(
    r"\{(?:conversions_tracking|click_id|clickId|CLICKID|SUBID|subid|cid|postbackid|postbackId"
    r"|value|price|sub_id|uuid|lead_code)\}"
)


def find_leftover_macros(url: str) -> list[str]:
    """Every network placeholder in ``url``, in order of appearance."""
    found: list[tuple[int, str]] = []
    for pattern in (*_PATTERNS, _NETWORK_BRACE_MACROS):
        found.extend((m.start(), m.group()) for m in pattern.finditer(url))
    return [text for _, text in sorted(set(found))]
