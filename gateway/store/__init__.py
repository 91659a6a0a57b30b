"""Durable state behind one small interface (``base.Store``); SQLite first."""
