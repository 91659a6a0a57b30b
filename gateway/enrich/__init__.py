"""Visit enrichment: tokens derived from a visit's user agent and address."""

from __future__ import annotations

from gateway.enrich.base import EMPTY, DataFile, Enricher, Enrichers, Visit

__all__ = ("EMPTY", "DataFile", "Enricher", "Enrichers", "Visit")
