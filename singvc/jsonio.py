"""JSON that is always valid: every report, manifest and printed figure singvc writes goes through here.

Python's :mod:`json` writes ``NaN`` and ``Infinity`` for non-finite floats, which no strict JSON
reader accepts. :func:`json_safe` turns them (plain floats, numpy scalars and arrays, at any depth)
into ``null``, and :func:`dumps` then serialises with ``allow_nan=False``, so a value that slipped
through is an error here rather than a file other tools cannot read.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from .run import write_text


def json_safe(value):
    """``value`` with non-finite floats as ``None``, numpy scalars and arrays as Python numbers and
    lists, tuples as lists, dict keys as strings; anything else JSON cannot hold as ``str``."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def dumps(data, indent: int | None = 2) -> str:
    """``data`` as strict JSON text (see :func:`json_safe`)."""
    return json.dumps(json_safe(data), indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike, data) -> None:
    """Write ``data`` as strict JSON (see :func:`dumps`) atomically: a temp file beside ``path``,
    then a rename."""
    write_text(path, dumps(data) + "\n")
