"""Presets: named bundles of settings kept as TOML files in the top-level ``presets/`` folder
(installed as the package ``singvc.presets``), or any ``.toml`` file given by path.

A preset file has a ``description`` and a ``[settings]`` table whose keys are
:class:`singvc.pipeline.CoverSettings` field names. On the command line, ``--preset NAME`` sets
those values as defaults; flags given explicitly still win.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import UserInputError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI (a dependency there)
    import tomli as tomllib

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"


def _presets_dir() -> Path:
    try:
        from importlib.resources import files

        return Path(str(files("singvc.presets")))
    except (ModuleNotFoundError, TypeError):
        return PRESETS_DIR


def list_presets() -> dict[str, Path]:
    """Shipped preset names -> files."""
    return {p.stem: p for p in sorted(_presets_dir().glob("*.toml"))}


def _toml_load(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserInputError(f"{path}: not valid TOML ({exc})") from None


def load_preset(name_or_path: str | os.PathLike) -> dict:
    """The ``[settings]`` of a preset, checked against :class:`CoverSettings`' fields, types,
    choices and ranges (the recipes' schema: :data:`singvc.settings.CHOICES`, :data:`singvc.settings.RANGES`)."""
    from .recipe import _check, _check_texts, _settings_schema, key_line

    path = Path(name_or_path)
    if not (path.suffix == ".toml" and path.exists()):
        known = list_presets()
        if str(name_or_path) not in known:
            raise UserInputError(f"unknown preset {str(name_or_path)!r}; choose one of {', '.join(known)} or a .toml file")
        path = known[str(name_or_path)]
    data = _toml_load(path)
    unknown_top = set(data) - {"description", "settings"}
    if unknown_top:
        raise UserInputError(f"{path}: unknown key(s) {', '.join(sorted(unknown_top))} (expected description, [settings])")
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        raise UserInputError(f"{path}: 'settings' must be a table ([settings])")
    text = path.read_text()

    def fail(key: str, message: str):
        line = key_line(text, f"settings.{key}")
        raise UserInputError(f"{path}:{line}: {message}" if line else f"{path}: {message}")

    _check(settings, _settings_schema(), "", fail)
    _check_texts({"settings": settings}, lambda dotted, message: fail(dotted.split(".", 1)[1], message))
    return dict(settings)
