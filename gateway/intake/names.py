"""The conversion parameters the gateway reads, by name: what each carries.

One table for the intake (``params.parse_conversion``) and for the config
(a network's ``params`` may map its own names only onto these).
"""

from __future__ import annotations

#: var1..var20: a click's or conversion's variables by position (``tokens.VAR_KEYS``,
#: spelt out here: the config reads this table and tokens reads the config).
VAR_KEYS = tuple(f"var{i}" for i in range(1, 21))

__all__ = (
    "CLICK_ID_NAMES",
    "EVENT_NAMES",
    "PAYOUT_NAMES",
    "ROLES",
    "TXID_NAMES",
    "VAR_KEYS",
    "is_target",
)

CLICK_ID_NAMES = ("cid", "clickid", "click_id", "subid")
PAYOUT_NAMES = ("payout", "sum", "amount")
TXID_NAMES = ("txid", "transaction_id", "tid")
EVENT_NAMES = ("event", "et")

#: query/form/JSON name -> (what it carries, rank): the first non-empty value per
#: role wins, aliases in the order the contract lists them; rank -1: kept as given.
ROLES: dict[str, tuple[str, int]] = {
    **{n: ("click_id", i) for i, n in enumerate(CLICK_ID_NAMES)},
    **{n: ("payout", i) for i, n in enumerate(PAYOUT_NAMES)},
    **{n: ("txid", i) for i, n in enumerate(TXID_NAMES)},
    **{n: ("event", i) for i, n in enumerate(EVENT_NAMES)},
    "status": ("status", 0),
    "currency": ("currency", 0),
    "network": ("network", 0),
    "secret": ("secret", 0),
    "externalid": ("externalid", 0),
    "external_id": ("externalid", 1),
    "campaign": ("campaign", 0),
    "campaign_id": ("campaign", 1),
    "trafficsource": ("traffic_source", 0),
    "traffic_source": ("traffic_source", 1),
    **{k: (k, -1) for k in VAR_KEYS},
}


def is_target(name: str) -> bool:
    """Whether a network's parameter may be mapped onto ``name``."""
    return (name in ROLES and name not in ("network", "secret")) or (
        name.startswith("var:") and len(name) > 4
    )
