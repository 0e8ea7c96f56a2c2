"""The shape every optional section of a study file (`trajectory:`, `power:`) must have."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UserError


def check_section(path: Path, name: str, data: Any, keys: Sequence[str]) -> None:
    """`UserError` unless the study file's `name:` section is a mapping whose keys are all in `keys`."""
    if not isinstance(data, dict):
        raise UserError(f"study {path}: {name} must be a mapping with keys {', '.join(keys)}")
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise UserError(f"study {path}: {name}: unknown key {unknown[0]!r}; known keys: {', '.join(keys)}")
