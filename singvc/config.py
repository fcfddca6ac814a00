"""TOML settings files: presets (named bundles of settings, ``presets/*.toml``, installed as the
package ``singvc.presets``, or any ``.toml`` file given by path) and the line numbers of keys, so
that a bad value is reported as ``FILE:LINE: ...`` (presets here, recipes in :mod:`singvc.recipe`).

A preset file has a ``description`` and a ``[settings]`` table of settings from
:data:`singvc.settings.SCHEMA` (any :class:`~singvc.settings.CoverSettings` field). Its values
are a layer of :func:`singvc.settings.resolve`: above the defaults, below a recipe's own
settings, ``--set`` and flags given explicitly.
"""
from __future__ import annotations

import os
import re
from importlib.resources import files
from pathlib import Path

from .errors import UserInputError
from .settings import COVER_FIELDS, Layer, check

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI (a dependency there)
    import tomli as tomllib

#: the presets folder of a source checkout (an installed package finds them as ``singvc.presets``)
PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"


def presets_dir() -> Path:
    """Where the shipped presets (and shipped voice profiles, ``voices/``) are."""
    try:
        return Path(str(files("singvc.presets")))
    except (ModuleNotFoundError, TypeError):
        return PRESETS_DIR


def list_presets() -> dict[str, Path]:
    """Shipped preset names -> files."""
    return {p.stem: p for p in sorted(presets_dir().glob("*.toml"))}


def toml_loads(text: str, where: str) -> dict:
    """Parse TOML ``text``; a syntax error raises :class:`UserInputError` naming ``where``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserInputError(f"{where}: not valid TOML ({exc})") from None


def preset_path(name_or_path: str | os.PathLike) -> Path:
    """The file of a preset name (``presets/NAME.toml``) or a ``.toml`` path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.exists():
        return path
    known = list_presets()
    if str(name_or_path) not in known:
        raise UserInputError(f"unknown preset {str(name_or_path)!r}; choose one of {', '.join(known)} or a .toml file")
    return known[str(name_or_path)]


def preset_layer(name_or_path: str | os.PathLike) -> Layer:
    """A preset's ``[settings]`` as a layer of :func:`singvc.settings.resolve`, every value checked
    now against the schema; a bad one raises :class:`UserInputError` as ``FILE:LINE: ...``."""
    path = preset_path(name_or_path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"cannot read preset {path}: {exc}") from None
    data = toml_loads(text, str(path))
    shown = _shown(path)

    def where(key: str) -> str:
        line = key_line(text, f"settings.{key}")
        return f"{shown}:{line}" if line else shown

    unknown_top = set(data) - {"description", "settings"}
    if unknown_top:
        raise UserInputError(f"{shown}: unknown key(s) {', '.join(sorted(unknown_top))} (expected description, [settings])")
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        raise UserInputError(f"{shown}: 'settings' must be a table ([settings])")
    for key, value in settings.items():
        if key not in COVER_FIELDS:
            raise UserInputError(f"{where(key)}: unknown setting {key!r} (known: {', '.join(COVER_FIELDS)})")
        settings[key] = check(key, value, where(key))
    return Layer(dict(settings), where)


def load_preset(name_or_path: str | os.PathLike) -> dict:
    """The checked ``[settings]`` of a preset (see :func:`preset_layer`)."""
    return dict(preset_layer(name_or_path).values)


def _shown(path: Path) -> str:
    """A preset's path as the user would recognise it: relative to the working directory or to the
    checkout when possible (``presets/strong.toml``)."""
    for base in (Path.cwd(), PRESETS_DIR.parent):
        try:
            return str(path.resolve().relative_to(base.resolve()))
        except ValueError:
            continue
    return str(path)


# -- line numbers ------------------------------------------------------------------------------
_KEY_PART = r'(?:"[^"]*"|\'[^\']*\'|[A-Za-z0-9_-]+)'
_HEADER = re.compile(rf'^\s*(\[\[?)\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*\]\]?')
_ASSIGN = re.compile(rf'^\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=')


def _split_key(text: str) -> list[str]:
    return [a or b or c for a, b, c in re.findall(r'"([^"]*)"|\'([^\']*)\'|([A-Za-z0-9_-]+)', text)]


def key_lines(text: str) -> dict[str, int]:
    """Map every dotted key path of a TOML text to its 1-based line (tables too); elements of
    arrays of tables are numbered from 1: ``feature.sections[2].voice``. Keys inside inline tables
    are not listed (:func:`key_line` then answers with the enclosing key's line)."""
    lines: dict[str, int] = {}
    counts: dict[str, int] = {}
    table = ""
    in_multiline = None
    for number, line in enumerate(text.splitlines(), 1):
        if in_multiline:
            if line.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        header = _HEADER.match(line)
        if header:
            parts = _split_key(header.group(2))
            # the parent path may run through array elements: use the current element's index
            prefix = ""
            for part in parts[:-1]:
                prefix = f"{prefix}{part}"
                if prefix in counts:
                    prefix = f"{prefix}[{counts[prefix]}]"
                prefix += "."
            name = prefix + parts[-1]
            if header.group(1) == "[[":
                counts[name] = counts.get(name, 0) + 1
                lines.setdefault(name, number)
                name = f"{name}[{counts[name]}]"
            table = name
            lines.setdefault(name, number)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            path = ".".join(([table] if table else []) + _split_key(assign.group(1)))
            lines.setdefault(path, number)
            rest = line[assign.end():]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_multiline = quote
    return lines


def key_line(text: str, path: str) -> int | None:
    """The line of a dotted key path (see :func:`key_lines`), else of its nearest listed parent."""
    lines = key_lines(text)
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None
