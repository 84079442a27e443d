"""Configuration as code: trials, sites, AEs, regions, backends, profiles and roles in YAML.

``load_file`` parses and validates (errors carry file, line and a hint),
``plan`` compares a file with the index, ``apply`` makes the index match it
(idempotently), ``export`` writes the current state back as the same YAML.
"""

from trialpacs.config.loader import ConfigError, Problem, load_file, load_text
from trialpacs.config.schema import ConfigDoc
from trialpacs.config.state import Change, apply, current, export_yaml, plan

__all__ = [
    "Change",
    "ConfigDoc",
    "ConfigError",
    "Problem",
    "apply",
    "current",
    "export_yaml",
    "load_file",
    "load_text",
    "plan",
]
