"""``python -m gateway geo install|show``: the IP data the geo tokens come from."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gateway.enrich.geo import ATTRIBUTION, MANIFEST, default_geo_dir, open_geo

__all__ = ("run",)


def run(args: argparse.Namespace) -> int:
    folder = Path(args.dir).expanduser() if args.dir else default_geo_dir()
    if args.geo_command == "install":
        from gateway.enrich.install import InstallError, install  # noqa: PLC0415 - only here

        try:
            install(folder)
        except InstallError as exc:
            print(f"geo install: {exc}", file=sys.stderr)
            return 1
    geo, note = open_geo(folder)
    if getattr(args, "json", False):
        manifest = None
        if geo is not None:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        print(json.dumps({"dir": str(folder), "installed": geo is not None, "manifest": manifest}))
        return 0 if geo is not None else 1
    print(note)
    if geo is None:
        return 1
    for item in geo.files():
        print(f"  {item.name}: {item.version}, built {item.built}, {item.licence}: {item.path}")
    print(ATTRIBUTION)
    geo.close()
    return 0
