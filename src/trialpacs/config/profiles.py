"""Configured profiles on top of the deid library's built-in ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trialpacs.config.schema import ProfileCfg
from trialpacs.deid import Profile, load_profile
from trialpacs.deid.profile import BUILTIN_PROFILES, profile_from_mapping
from trialpacs.errors import InvalidInput


def build_profile(
    name: str, defined: Mapping[str, ProfileCfg | Mapping[str, Any]], depth: int = 0
) -> Profile:
    """Resolve ``name`` among configured profiles (``extends`` may name either kind)."""
    if depth > 8:
        raise InvalidInput(f"profile {name!r}: 'extends' chain is too long (a loop?)")
    entry = defined.get(name)
    if entry is None:
        if name in BUILTIN_PROFILES:
            return load_profile(name)
        raise InvalidInput(f"unknown profile {name!r}")
    data = entry.definition() if isinstance(entry, ProfileCfg) else dict(entry)
    data = {**data, "name": name}
    parent = data.pop("extends", None)
    base = build_profile(str(parent), defined, depth + 1) if parent else Profile(name="basic")
    if not isinstance(data, dict):
        raise InvalidInput(f"profile {name!r} must be a mapping")
    return profile_from_mapping(data, f"profile {name!r}", base)
