"""Shipped configuration: schemas (pydantic v2) and a loader that reports
every problem as ``file:line: field.path: message``. Django-free."""

from ifns_paper.config.loader import ConfigBundle, ConfigError, ConfigProblem, load_config_dir

__all__ = ["ConfigBundle", "ConfigError", "ConfigProblem", "load_config_dir"]
