"""Durable state behind small interfaces (``base``); ``open_store`` picks a backend by URL."""

from gateway.store.backends import open_store, store_url

__all__ = ("open_store", "store_url")
