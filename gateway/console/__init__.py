"""The operator console served at ``/console``: server-rendered pages, vendored assets."""
