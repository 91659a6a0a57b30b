"""What ``serve`` says when it starts: the mode it runs in and what to try next.

A first run must not surprise: the banner says whether postbacks really go
out (live), none do (dry run), or some do not (per source or rule), and
prints a click URL and a conversion URL that work against the running config,
so the whole path can be poked from a shell in two commands.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from gateway.config import Campaign, Config

__all__ = ("banner", "click_url", "mode_line")

#: ``sub1={click.id}`` in an offer URL: the parameter the click id goes out in.
_CLICK_ID_PARAM = re.compile(r"[?&]([A-Za-z0-9_.\-]+)=\{click\.id\}")


def mode_line(config: Config) -> str:
    if config.dry_run_everything:
        return (
            "mode: DRY RUN ([delivery] dry_run = true): postbacks are rendered, stored "
            "and logged; nothing is sent. Set dry_run = false to go live."
        )
    shadowed = len(config.dry_run_sources) + len(config.dry_run_rules)
    if shadowed:
        return (
            f"mode: LIVE, with {len(config.dry_run_sources)} traffic source(s) and "
            f"{len(config.dry_run_rules)} rule(s) in dry run (stored, not sent)"
        )
    return "mode: LIVE: postbacks are sent to the traffic sources"


def click_url(base: str, campaign: Campaign) -> str:
    """A click for ``campaign`` as its source's panel would send it (test values)."""
    source = campaign.source.spec
    query = [f"{source.click_id_param}=test-1"]
    query += [f"{name}=1" for name in source.variables[:1]]
    return f"{base}/click/{quote(campaign.id, safe='')}?{'&'.join(query)}"


def banner(config: Config, base: str) -> list[str]:
    """The start-up lines after "listening on": the mode, then commands to try."""
    lines = [mode_line(config)]
    campaign = next(iter(config.campaigns.values()), None)
    if campaign is None:
        return [*lines, "no campaigns configured: add one to try a click"]
    found = _CLICK_ID_PARAM.search(campaign.spec.offer_url)
    where = f"the {found.group(1)}= value" if found else "the click id"
    auth = ' -H "Authorization: Bearer $API_TOKEN"' if config.api_token else ""
    return [
        *lines,
        f"try a click:      curl -si '{click_url(base, campaign)}' | grep -i '^location'",
        f"then conversion:  curl -s '{base}/postback?cid=CLICK_ID&payout=1.50'"
        f"   (CLICK_ID: {where} in that Location)",
        f"then the log:     curl -s{auth} '{base}/api/deliveries'",
    ]
