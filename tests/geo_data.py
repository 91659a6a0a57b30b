"""A tiny geo folder for tests: city and ASN MMDB files built with mmdb-writer,
shaped like the installed ones (DB-IP's city records, GeoLite2-ASN's records),
with the manifest ``geo install`` writes."""

from __future__ import annotations

import json
from pathlib import Path

import netaddr  # type: ignore[import-untyped]
from mmdb_writer import MMDBWriter

from gateway.enrich.geo import MANIFEST

#: address -> what the tiny files say about it (documentation ranges)
PLACES = {
    "203.0.113.0/24": {"country_code": "DE", "state1": "Bavaria", "city": "Munich"},
    "198.51.100.0/24": {"country_code": "US", "state1": "Texas", "city": "Austin"},
    "2001:db8::/32": {"country_code": "JP", "state1": "Tokyo", "city": "Tokyo"},
}
NETWORKS = {
    "203.0.113.0/24": (64500, "Example Mobile GmbH"),
    "2001:db8::/32": (64501, "Example Fibre KK"),
}


def write_geo(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    city4 = MMDBWriter(ip_version=4, database_type="city ipv4")
    city6 = MMDBWriter(ip_version=6, database_type="city ipv6")
    for cidr, place in PLACES.items():
        writer = city6 if ":" in cidr else city4
        writer.insert_network(netaddr.IPSet([cidr]), {**place, "postcode": "", "timezone": ""})
    city4.to_db_file(str(folder / "city4.mmdb"))
    city6.to_db_file(str(folder / "city6.mmdb"))
    asn = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="asn")
    for cidr, (number, org) in NETWORKS.items():
        asn.insert_network(
            netaddr.IPSet([cidr]),
            {"autonomous_system_number": number, "autonomous_system_organization": org},
        )
    asn.to_db_file(str(folder / "asn.mmdb"))
    manifest = {
        "city": {
            "title": "test city",
            "package": "test-city",
            "version": "1",
            "built": "2026-01-01",
            "files": {"4": "city4.mmdb", "6": "city6.mmdb"},
        },
        "asn": {"title": "test asn", "package": "test-asn", "version": "1", "file": "asn.mmdb"},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return folder
