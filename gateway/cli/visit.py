"""``python -m gateway visit --ip IP --ua UA``: every visit token a click would record.

The visit is built and enriched by the same functions ``/click`` uses
(``intake_routes.request_visit``, ``tokens.visit_tokens``), so what this prints
is what a click from that address and browser stores; the data files and
their build dates, and the data's attribution, are printed with it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from multidict import CIMultiDict, CIMultiDictProxy

from _fastrender._catalog import CANONICAL
from gateway.config import ConfigError, load
from gateway.config.schema import EnrichSettings
from gateway.enrich.factory import make_enrichers
from gateway.enrich.geo import ATTRIBUTION
from gateway.http.intake_routes import request_visit
from gateway.intake.client_address import TrustedProxies
from gateway.tokens import visit_tokens

__all__ = ("run",)


def _headers(args: argparse.Namespace) -> CIMultiDictProxy[str] | None:
    headers: CIMultiDict[str] = CIMultiDict()
    if args.ua:
        headers["User-Agent"] = args.ua
    for line in args.headers:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            print(f"--header {line!r}: expected 'Name: value'", file=sys.stderr)
            return None
        headers.add(name.strip(), value.strip())
    return CIMultiDictProxy(headers)


def run(args: argparse.Namespace) -> int:
    trusted: TrustedProxies = TrustedProxies(())
    settings = EnrichSettings()
    limit = 1024
    if args.config:
        try:
            config = load(Path(args.config))
        except ConfigError as exc:
            for problem in exc.problems:
                print(f"{args.config}: {problem}", file=sys.stderr)
            return 1
        trusted, settings = config.trusted_proxies, config.spec.enrich
        limit = config.limits.max_value_length
    headers = _headers(args)
    if headers is None:
        return 2
    enricher, notes = make_enrichers(settings)
    visit = request_visit(args.ip, headers, trusted)
    tokens = visit_tokens(visit, enricher, limit)
    order = {name: i for i, name in enumerate(CANONICAL)}
    ordered = dict(sorted(tokens.items(), key=lambda kv: order.get(kv[0], len(order))))
    files = [
        {"name": f.name, "path": f.path, "version": f.version, "built": f.built}
        for f in enricher.files()
    ]
    if args.json:
        out = {"tokens": ordered, "files": files, "notes": notes, "attribution": ATTRIBUTION}
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    width = max((len(k) for k in ordered), default=0)
    for key, value in ordered.items():
        print(f"{{{key}}}".ljust(width + 3), value)
    print()
    for item in files:
        print(f"data: {item['name']} {item['version']}, built {item['built']} ({item['path']})")
    for note in notes:
        print(f"note: {note}")
    if files:
        print(ATTRIBUTION)
    return 0
