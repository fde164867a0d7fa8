"""metallb.io configuration: parse_config turns manifest dicts into one validated, immutable Config."""

from metallb_fast.config.errors import ConfigError, ConfigProblem
from metallb_fast.config.model import Config
from metallb_fast.config.parse import config_problems, parse_config

__all__ = ["Config", "ConfigError", "ConfigProblem", "config_problems", "parse_config"]
