"""The enrichers a config asks for, built in one place (serve, the app, ``visit``)."""

from __future__ import annotations

from pathlib import Path

from gateway.config.schema import EnrichSettings
from gateway.enrich.base import Enricher, Enrichers
from gateway.enrich.geo import default_geo_dir, open_geo
from gateway.enrich.useragent import UserAgentEnricher

__all__ = ("describe", "geo_dir", "make_enrichers")


def geo_dir(settings: EnrichSettings) -> Path:
    """``[enrich] geo_dir``, else ``$GATEWAY_GEO_DIR``, else the user's cache folder."""
    return Path(settings.geo_dir).expanduser() if settings.geo_dir else default_geo_dir()


def make_enrichers(settings: EnrichSettings) -> tuple[Enrichers, list[str]]:
    """The enrichers and one line per part saying what it runs on (or why not)."""
    parts: list[Enricher] = []
    notes: list[str] = []
    if settings.user_agent:
        parts.append(UserAgentEnricher())
    else:
        notes.append("user-agent tokens off ([enrich] user_agent = false)")
    if settings.geo:
        geo, note = open_geo(geo_dir(settings))
        notes.append(note)
        if geo is not None:
            parts.append(geo)
    else:
        notes.append("geo tokens off ([enrich] geo = false)")
    return Enrichers(parts), notes


def describe(settings: EnrichSettings) -> list[str]:
    """What ``make_enrichers`` would run on, without building the user-agent rules
    (for ``check``, which must stay quick)."""
    notes = [
        "user-agent tokens: ua-parser (regex backend)"
        if settings.user_agent
        else "user-agent tokens off ([enrich] user_agent = false)"
    ]
    if not settings.geo:
        return [*notes, "geo tokens off ([enrich] geo = false)"]
    geo, note = open_geo(geo_dir(settings))
    if geo is not None:
        geo.close()
    return [*notes, note]
