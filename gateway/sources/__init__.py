"""The traffic-source catalog: presets that know each network's postback,
click macros, answer rule and click memory.  See ``catalog.py``."""
