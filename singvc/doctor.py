"""Does the installed torch stack fit together? Versions, a load test, and the tested pairs.

torchaudio's compiled library works only with the torch it was built for, whatever its package
metadata declares (torchaudio 2.11.1 declares ``torch>=2.11`` yet fails to load with torch 2.11.0),
and pip installs the newest versions a range allows. So singvc ships ``constraints.txt`` with the
set it was tested on, and checks at run time, before any audio work, that the pair it finds
actually loads: a broken pair is one clear :class:`~singvc.errors.InstallError` (exit 3 in the CLI)
naming both versions and the fix, instead of an ``OSError`` from deep inside an import.
"""
from __future__ import annotations

import functools
import platform
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from . import __version__
from .errors import InstallError

#: (torch, torchaudio) release pairs the test suite and the README's main job have passed on
#: (``constraints.txt`` pins the first). Others may work: they are reported, not refused.
TESTED_PAIRS = (("2.11.0", "2.11.0"),)
#: the packages whose versions shape singvc's output or its install, in report order
STACK = ("torch", "torchaudio", "torchcrepe", "demucs", "onnxruntime", "onnx", "numpy", "librosa", "pyloudnorm",
         "soundfile", "pyworld", "scipy")
#: how to get the tested set back, quoted in every message about a broken or untested stack
FIX = "reinstall the tested set: pip install -c constraints.txt -e . (see README, 'Fresh machine')"


def installed_version(name: str) -> str | None:
    """A package's installed version from its metadata (nothing imported), or None."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def release(v: str | None) -> str | None:
    """``"2.11.0+cu130"`` -> ``"2.11.0"`` (the local build label does not change the pairing)."""
    return None if v is None else v.split("+", 1)[0]


@dataclass
class StackReport:
    """What :func:`check_stack` found: ``loads`` is False only when something does not load."""

    versions: dict[str, str | None]
    loads: bool
    problem: str | None = None
    tested: bool = False

    def verdict(self) -> str:
        """One line: does the torch stack fit together?"""
        torch_v, audio_v = self.versions.get("torch"), self.versions.get("torchaudio")
        pair = f"torch {torch_v} + torchaudio {audio_v}"
        if not self.loads:
            return f"BROKEN: {self.problem}; {FIX}"
        if self.tested:
            return f"ok: {pair} is a tested pair"
        return f"works, untested: {pair} loads, but singvc was tested with " + ", ".join(
            f"torch {t} + torchaudio {a}" for t, a in TESTED_PAIRS) + f"; if results look wrong, {FIX}"


def _load_torchaudio() -> None:
    """Import torchaudio and make it load its compiled library (where a mismatched pair fails)."""
    import torch  # noqa: F401
    import torchaudio

    # torchaudio loads libtorchaudio when imported (2.9+) or on the first op that needs it
    torchaudio.functional.resample(torch.zeros(1, 32), 16_000, 8_000)


def check_stack(load=None) -> StackReport:
    """Versions of the stack and a real load test of torch + torchaudio (+ torchcrepe, demucs).

    Args:
        load: the load test (default: import torchaudio and run one op); tests pass a failing one.
    """
    load = load or _load_torchaudio
    versions = {name: installed_version(name) for name in STACK}
    report = StackReport(versions=versions, loads=True)
    missing = [n for n in ("torch", "torchaudio", "torchcrepe", "demucs") if versions[n] is None]
    if missing:
        report.loads = False
        report.problem = f"{', '.join(missing)} not installed"
        return report
    try:
        load()
    except Exception as exc:  # OSError (undefined symbol), ImportError, RuntimeError from torch.ops
        report.loads = False
        detail = " ".join(str(exc).split())
        if len(detail) > 160:
            detail = detail[:160] + "..."
        report.problem = (f"torchaudio {versions['torchaudio']} does not load with torch {versions['torch']} "
                          f"({type(exc).__name__}: {detail})")
        return report
    report.tested = (release(versions["torch"]), release(versions["torchaudio"])) in TESTED_PAIRS
    return report


@functools.lru_cache(maxsize=1)
def _cached_check() -> StackReport:
    return check_stack()


def require_stack() -> None:
    """Raise :class:`InstallError` when torch and torchaudio do not load together.

    Called before the first model is built (crepe, Demucs), so a broken install stops at once with
    one line instead of an ``OSError`` from inside an import. Checked once per process.
    """
    report = _cached_check()
    if not report.loads:
        raise InstallError(f"the installed torch stack is broken: {report.problem}; {FIX}; details: singvc doctor")


def describe(report: StackReport) -> list[str]:
    """The lines ``singvc --version`` and ``singvc doctor`` print."""
    lines = [f"singvc {__version__} (Python {platform.python_version()}, {sys.platform} {platform.machine()})"]
    for name, v in report.versions.items():
        lines.append(f"  {name:<12} {v or 'not installed'}")
    lines.append(f"torch stack: {report.verdict()}")
    return lines
