"""Helpers shared by the data, train, export and eval subcommands."""

from __future__ import annotations

import argparse
import dataclasses
from typing import TypeVar

T = TypeVar("T")


def config_from_args(cls: type[T], args: argparse.Namespace) -> T:
    """Build a config dataclass from the parsed arguments of the same names (the rest keep their defaults)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in vars(args).items() if k in names})
