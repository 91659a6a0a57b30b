"""The config file: TOML decoded into msgspec structs, checked with paths,
compiled into what ``serve`` runs on.

One module a job, imports running downward: ``schema`` (the file's shape),
``lint`` (problems and warnings, each with its path), ``compile`` (specs to
sources, campaigns, networks and their postback rules), ``load`` (reading a
file: ``read`` lists every problem, ``load`` raises ``ConfigError``).  This
package re-exports the names the rest of the gateway uses.  The schema is
documented key by key in docs/config.md.
"""

from gateway.config.compile import Campaign, Config, Network, Source
from gateway.config.lint import Problem
from gateway.config.load import ConfigError, default_config_path, load, read, validate
from gateway.config.schema import (
    BatchSettings,
    CampaignSpec,
    ConfigSpec,
    LimitSettings,
    NetworkSpec,
    TrafficSourceSpec,
)

__all__ = (
    "BatchSettings",
    "Campaign",
    "CampaignSpec",
    "Config",
    "ConfigError",
    "ConfigSpec",
    "LimitSettings",
    "Network",
    "NetworkSpec",
    "Problem",
    "Source",
    "TrafficSourceSpec",
    "default_config_path",
    "load",
    "read",
    "validate",
)
