"""Typed settings and their config sections: a dataclass's defaults are the section's defaults, and the
dataclass is built from the section's fields of the same names."""

from __future__ import annotations

import dataclasses


def defaults_of(cls, exclude=()) -> dict:
    """A dataclass's field defaults, for the config section that the dataclass is built from."""
    return {f.name: f.default for f in dataclasses.fields(cls) if f.name not in exclude}


def build(cls, section, **fixed):
    """`cls` from the config section's fields of the same names, plus `fixed` ones that come from
    elsewhere."""
    names = {f.name for f in dataclasses.fields(cls)} - set(fixed)
    return cls(**{name: section[name] for name in names}, **fixed)
