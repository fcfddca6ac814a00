"""Voice profiles: what the ``dsp`` converter and the range plan need to know about a target voice.

A profile is measured on the voiced frames (crepe track) of one or more clips of the target
voice and saved as a small, versioned, human-readable JSON file:

- ``register``: median, P10-P90 tessitura and P5/P95 range in MIDI note numbers (with names);
- ``timbre``: spectral-envelope statistics on a fixed mel-spaced frequency grid
  (:data:`GRID_HZ`, 60-7600 Hz so that 16 kHz clips cover it): the long-term envelope shape,
  :data:`N_CLASSES` class-wise envelope shapes (k-means over frames, with their weights),
  the mean aperiodicity (breathiness) on the same grid, and the band limit of the clips;
- ``loudness``: integrated loudness (LUFS) of the clips.

Envelope "shapes" are WORLD CheapTrick envelopes in dB with each frame's mean over the grid
removed, so that the loudness of a frame does not move its class.

Profiles are looked up by name in :func:`profiles_dir` (``$SINGVC_HOME/voices``, default
``~/.local/share/singvc/voices``), then among the presets shipped in the top-level ``presets/voices`` (installed as ``singvc.presets``).
"""
from __future__ import annotations

import json
import os
import re
import time
import io
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from .audio import as_audio, check_finite, resample, to_mono
from .config import presets_dir
from .loudness import integrated_loudness
from .errors import InvalidReferenceError, UserInputError
from .pitch import PitchTrack
from .run import write_bytes, write_text
from .plan import Register, measure_register, midi_to_note

#: profile format version; bump on incompatible changes
PROFILE_VERSION = 1
#: number of envelope classes in a profile
N_CLASSES = 8
#: frame period (ms) of the envelope analysis used for profiles and source statistics
STATS_PERIOD_MS = 20.0
#: warn below this much voiced audio
MIN_VOICED_SECONDS = 3.0
#: most frames analysed per profile (evenly subsampled beyond)
MAX_FRAMES = 4000
def _shipped_voices_dir() -> Path:
    return presets_dir() / "voices"


PRESETS_DIR = _shipped_voices_dir()


def _mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def _imel(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


#: the frequency grid (Hz) of every envelope statistic: 60 mel-spaced points, 60-7600 Hz
GRID_HZ = _imel(np.linspace(_mel(60.0), _mel(7600.0), 60))


#: seconds of reference audio a profile keeps (the clips joined, mono)
MAX_KEPT_SECONDS = 120.0
#: what the kept reference audio of ``<name>.json`` is saved as, beside it
REFERENCE_SUFFIX = ".reference.wav"


class VoiceClip:
    """Reference audio a profile keeps for converters that condition on audio (``seedvc``):
    mono float32 ``[1, samples]`` at ``sample_rate`` Hz. A clip saved beside a profile
    (:func:`reference_path`) is read when first used, so listing or showing profiles, and
    converters that need no audio, never read it."""

    def __init__(self, audio: np.ndarray | None = None, sample_rate: int | None = None,
                 path: str | os.PathLike | None = None) -> None:
        if audio is None and path is None:
            raise ValueError("a VoiceClip needs audio or the path of a saved clip")
        self._audio, self._rate = audio, None if sample_rate is None else int(sample_rate)
        self.path = None if path is None else Path(path)

    def _read(self) -> None:
        """Read the saved clip (once).

        Raises:
            UserInputError: unreadable, empty or not finite (one line: enroll the voice again).
        """
        if self._audio is not None:
            return
        try:
            audio, rate = sf.read(str(self.path), dtype="float32", always_2d=True)
        except (OSError, RuntimeError, sf.LibsndfileError) as exc:
            raise UserInputError(f"{self.path}: cannot read the voice's reference audio ({exc}); "
                                 "enroll the voice again") from None
        if audio.shape[0] == 0 or not np.isfinite(audio).all():
            raise UserInputError(f"{self.path}: the voice's reference audio is empty or not finite; "
                                 "enroll the voice again")
        self._audio, self._rate = np.ascontiguousarray(audio.T[:1]), int(rate)

    @property
    def audio(self) -> np.ndarray:
        self._read()
        return self._audio

    @property
    def sample_rate(self) -> int:
        self._read()
        return self._rate

    @property
    def seconds(self) -> float:
        return self.audio.shape[-1] / self.sample_rate


def reference_path(profile_path: str | os.PathLike) -> Path:
    """Where the reference audio of the profile saved at ``profile_path`` is kept."""
    path = Path(profile_path)
    return path.with_name(path.stem + REFERENCE_SUFFIX)


def join_clips(clips: list[tuple[np.ndarray, int]], max_seconds: float = MAX_KEPT_SECONDS) -> VoiceClip:
    """The clips as one mono :class:`VoiceClip` at the first clip's rate, at most ``max_seconds`` long."""
    rate = int(clips[0][1])
    parts = [resample(to_mono(as_audio(a, "reference"))[None], int(r), rate) for a, r in clips]
    audio = np.concatenate(parts, axis=-1)[:, : int(max_seconds * rate)]
    return VoiceClip(np.ascontiguousarray(audio, dtype=np.float32), rate)


@dataclass
class VoiceProfile:
    """A target voice, measured from clips (see the module docstring for the fields' meaning).

    Arrays are stored as lists of dB values on :data:`GRID_HZ` (``grid_hz`` is saved too, and a
    profile whose grid differs from this version's is rejected on load).
    """

    name: str
    register: dict
    mean_shape_db: list[float]
    class_shapes_db: list[list[float]]
    class_weights: list[float]
    aperiodicity_db: list[float]
    band_limit_hz: float
    loudness_lufs: float | None
    voiced_seconds: float
    clips: list[str] = field(default_factory=list)
    grid_hz: list[float] = field(default_factory=lambda: [round(float(f), 2) for f in GRID_HZ])
    version: int = PROFILE_VERSION
    created: str = ""
    license: str = ""
    warnings: list[str] = field(default_factory=list)
    #: the reference audio (not in the JSON: saved beside it, see :func:`reference_path`)
    reference: VoiceClip | None = field(default=None, repr=False, compare=False)

    # -- views ------------------------------------------------------------------------------
    def to_register(self) -> Register:
        """The register as a :class:`singvc.plan.Register` (for the range plan)."""
        r = self.register
        return Register(median=r["median"]["midi"], p10=r["p10"]["midi"], p90=r["p90"]["midi"],
                        low=r["low"]["midi"], high=r["high"]["midi"], voiced_seconds=self.voiced_seconds,
                        source=f"profile {self.name}")

    def arrays(self) -> dict[str, np.ndarray]:
        """The timbre statistics as float64 arrays (``mean``, ``classes``, ``weights``, ``aperiodicity``)."""
        return {"mean": np.asarray(self.mean_shape_db, dtype=np.float64),
                "classes": np.asarray(self.class_shapes_db, dtype=np.float64),
                "weights": np.asarray(self.class_weights, dtype=np.float64),
                "aperiodicity": np.asarray(self.aperiodicity_db, dtype=np.float64)}

    # -- files ------------------------------------------------------------------------------
    def to_json(self) -> str:
        """Indented JSON with each list of numbers on one line."""
        data = asdict(replace(self, reference=None))
        del data["reference"]  # kept beside the JSON (save)
        text = json.dumps(data, indent=1)
        text = re.sub(r"\[\s+([-+0-9.eE,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
        return text + "\n"

    def save(self, path: str | os.PathLike) -> Path:
        """Write the profile as JSON (temp file, then rename) and its reference audio beside it
        (:func:`reference_path`, 32-bit float WAV: read back bit-exact), each atomically; returns the profile's path."""
        path = Path(path)
        _check_profile(self, str(path))  # never write a profile that load() would refuse
        if self.reference is not None:
            buffer = io.BytesIO()
            sf.write(buffer, self.reference.audio.T, self.reference.sample_rate, format="WAV", subtype="FLOAT")
            write_bytes(reference_path(path), buffer.getvalue())
        return write_text(path, self.to_json())

    @classmethod
    def from_dict(cls, data: dict, where: str = "profile") -> "VoiceProfile":
        if not isinstance(data, dict) or "version" not in data:
            raise UserInputError(f"{where}: not a singvc voice profile (no version field)")
        data = {k: v for k, v in data.items() if k != "reference"}
        if data["version"] != PROFILE_VERSION:
            raise UserInputError(
                f"{where}: voice profile version {data['version']} is not supported (this singvc reads "
                f"version {PROFILE_VERSION}); enroll the voice again with 'singvc voice enroll'")
        try:
            profile = cls(**data)
        except TypeError as exc:
            raise UserInputError(f"{where}: malformed voice profile ({exc})") from None
        _check_profile(profile, where)
        grid = np.asarray(profile.grid_hz, dtype=np.float64)
        if grid.shape != GRID_HZ.shape or np.max(np.abs(grid - GRID_HZ)) > 0.05:
            raise UserInputError(f"{where}: voice profile frequency grid differs from this singvc's")
        return profile

    @classmethod
    def load(cls, path: str | os.PathLike) -> "VoiceProfile":
        """Read a profile written by :meth:`save`, with its reference audio when one is kept beside it."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise UserInputError(f"{path}: cannot read voice profile ({exc})") from None
        profile = cls.from_dict(data, str(path))
        kept = reference_path(path)
        if kept.is_file():  # read when a converter needs it (VoiceClip)
            profile.reference = VoiceClip(path=kept)
        return profile


# -- checks on load ----------------------------------------------------------------------------
#: register notes (MIDI) a profile may hold: about 31 Hz to 2.2 kHz, crepe's range (C1-B6) with a margin
REGISTER_MIDI = (23.0, 97.0)
#: plausible envelope shapes (dB, frame mean removed) and aperiodicity (dB, at most 0)
SHAPE_DB = (-150.0, 150.0)
APERIODICITY_DB = (-150.0, 1.0)
#: further plausible values: band limit (Hz), loudness (LUFS), voiced seconds, number of classes
BAND_LIMIT_HZ = (1000.0, 96000.0)
LOUDNESS_LUFS = (-80.0, 10.0)
VOICED_SECONDS = (0.0, 86400.0)
MAX_CLASSES = 64


def _bad(where: str, field_name: str, what: str, value) -> UserInputError:
    shown = repr(value)
    return UserInputError(f"{where}: {field_name} must be {what} (got {shown[:60]})")


def _number(where: str, field_name: str, value, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or not lo <= value <= hi:
        raise _bad(where, field_name, f"a finite number between {lo:g} and {hi:g}", value)
    return float(value)


def _numbers(where: str, field_name: str, values, length: int, lo: float, hi: float) -> None:
    if not isinstance(values, list) or len(values) != length:
        raise _bad(where, field_name, f"a list of {length} numbers",
                   f"{len(values)} values" if isinstance(values, list) else values)
    for i, v in enumerate(values):
        _number(where, f"{field_name}[{i}]", v, lo, hi)


def _check_profile(profile: "VoiceProfile", where: str) -> None:
    """Refuse a profile holding NaN, infinities, strings where numbers belong, absurd values or
    arrays of the wrong shape, naming the field (:class:`UserInputError`)."""
    g = len(GRID_HZ)
    for name in ("name", "created", "license"):
        if not isinstance(getattr(profile, name), str):
            raise _bad(where, name, "a string", getattr(profile, name))
    for name in ("clips", "warnings"):
        value = getattr(profile, name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _bad(where, name, "a list of strings", value)
    if not isinstance(profile.register, dict):
        raise _bad(where, "register", "a table of median, p10, p90, low, high", profile.register)
    midis = []
    for key in ("median", "p10", "p90", "low", "high"):
        entry = profile.register.get(key)
        if not isinstance(entry, dict) or "midi" not in entry:
            raise _bad(where, f"register.{key}", "a table with a 'midi' note number", entry)
        midi = _number(where, f"register.{key}.midi", entry["midi"], *REGISTER_MIDI)
        if "hz" in entry:
            hz = _number(where, f"register.{key}.hz", entry["hz"], 440.0 * 2 ** ((REGISTER_MIDI[0] - 69) / 12) - 0.01,
                         440.0 * 2 ** ((REGISTER_MIDI[1] - 69) / 12) + 0.01)
            if abs(12.0 * np.log2(hz / 440.0) + 69.0 - midi) > 0.5:
                raise UserInputError(f"{where}: register.{key}.hz ({hz:g}) does not match register.{key}.midi "
                                     f"({midi:g})")
        midis.append(midi)
    median, p10, p90, low, high = midis
    if not low <= p10 <= median <= p90 <= high:
        raise UserInputError(f"{where}: register must be ordered low <= p10 <= median <= p90 <= high "
                             f"(got {low:g}, {p10:g}, {median:g}, {p90:g}, {high:g})")
    _numbers(where, "grid_hz", profile.grid_hz, g, 0.0, 100000.0)
    _numbers(where, "mean_shape_db", profile.mean_shape_db, g, *SHAPE_DB)
    _numbers(where, "aperiodicity_db", profile.aperiodicity_db, g, *APERIODICITY_DB)
    classes = profile.class_shapes_db
    if not isinstance(classes, list) or not 1 <= len(classes) <= MAX_CLASSES:
        raise _bad(where, "class_shapes_db", f"a list of 1 to {MAX_CLASSES} envelope shapes",
                   f"{len(classes)} shapes" if isinstance(classes, list) else classes)
    for i, shape in enumerate(classes):
        _numbers(where, f"class_shapes_db[{i}]", shape, g, *SHAPE_DB)
    _numbers(where, "class_weights", profile.class_weights, len(classes), 0.0, 1.0)
    if abs(sum(profile.class_weights) - 1.0) > 0.01:
        raise UserInputError(f"{where}: class_weights must add up to 1 (got {sum(profile.class_weights):g})")
    _number(where, "band_limit_hz", profile.band_limit_hz, *BAND_LIMIT_HZ)
    if profile.loudness_lufs is not None:
        _number(where, "loudness_lufs", profile.loudness_lufs, *LOUDNESS_LUFS)
    _number(where, "voiced_seconds", profile.voiced_seconds, *VOICED_SECONDS)


# -- analysis ---------------------------------------------------------------------------------
def envelope_stats_frames(
    x: np.ndarray, sample_rate: int, times: np.ndarray, f0: np.ndarray, aperiodicity: bool = False,
    f0_floor: float | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """CheapTrick envelope shapes (dB on :data:`GRID_HZ`, frame mean removed) at ``times``.

    Args:
        x: mono float ``[samples]``.
        times, f0: frame times (s) and f0 (Hz, all > 0) of the frames to analyse.
        aperiodicity: also return D4C aperiodicity in dB on the grid.
        f0_floor: the lowest f0 (Hz) the analysis window is sized for; default from ``f0`` (give
            it when analysing a song piece by piece, so every piece uses the same window).

    Returns:
        ``(shapes [frames, grid], aperiodicity_db [frames, grid] or None)``.
    """
    import pyworld

    x = np.ascontiguousarray(x, dtype=np.float64)
    t = np.ascontiguousarray(times, dtype=np.float64)
    f = np.ascontiguousarray(f0, dtype=np.float64)
    floor = f0_floor if f0_floor is not None else envelope_floor(f)
    fft_size = pyworld.get_cheaptrick_fft_size(sample_rate, floor)
    sp = pyworld.cheaptrick(x, f, t, sample_rate, fft_size=fft_size)
    freqs = np.arange(sp.shape[1]) * sample_rate / fft_size
    db = 10.0 * np.log10(np.maximum(sp, 1e-20))
    shapes = grid_interp(db, freqs)
    shapes -= shapes.mean(axis=1, keepdims=True)
    ap_db = None
    if aperiodicity:
        ap = pyworld.d4c(x, f, t, sample_rate, threshold=0.0, fft_size=fft_size)
        ap_db = grid_interp(10.0 * np.log10(np.maximum(ap, 1e-12)), freqs)
    return shapes, ap_db


def envelope_floor(f0: np.ndarray) -> float:
    """The CheapTrick f0 floor (Hz) for frames of ``f0``: 71 Hz, lower for lower voices (>= 30)."""
    return float(min(71.0, max(30.0, 0.9 * np.min(f0)))) if len(f0) else 71.0


def grid_interp(values: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Rows of ``values`` (on ``freqs`` Hz) linearly interpolated onto :data:`GRID_HZ` (edge-held)."""
    idx = np.clip(np.searchsorted(freqs, GRID_HZ) - 1, 0, len(freqs) - 2)
    frac = np.clip((GRID_HZ - freqs[idx]) / (freqs[idx + 1] - freqs[idx]), 0.0, 1.0)
    return values[:, idx] * (1.0 - frac) + values[:, idx + 1] * frac


def _kmeans(data: np.ndarray, k: int, iterations: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic k-means (farthest-point initialisation); returns ``(centroids, weights)``."""
    k = max(1, min(k, len(data)))
    centres = [data[np.argmin(np.sum((data - data.mean(0)) ** 2, axis=1))]]
    for _ in range(1, k):
        d = np.min([np.sum((data - c) ** 2, axis=1) for c in centres], axis=0)
        centres.append(data[int(np.argmax(d))])
    c = np.array(centres)
    for _ in range(iterations):
        label = np.argmin(((data[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        new = np.array([data[label == j].mean(0) if np.any(label == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    label = np.argmin(((data[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
    weights = np.bincount(label, minlength=k) / len(data)
    return c, weights


def analyse_voice(
    clips: list[tuple[np.ndarray, int]],
    tracks: list[PitchTrack],
    name: str,
    clip_names: list[str] | None = None,
) -> VoiceProfile:
    """Measure a :class:`VoiceProfile` from clips and their crepe tracks.

    Args:
        clips: ``[(audio float32 [channels, samples], sample_rate), ...]``; music bleed and
            silence are tolerated (only crepe-voiced frames are analysed).
        tracks: the pitch track of each clip.
        name: the profile's name.

    Raises:
        InvalidReferenceError: no voiced frames, or clips and tracks differ in number.
    """
    if not clips or len(clips) != len(tracks):
        raise InvalidReferenceError(f"need one pitch track per clip (got {len(clips)} clips, {len(tracks)} tracks)")
    shapes, aps, f0s, band_limits, lufs_parts = [], [], [], [], []
    voiced_seconds = 0.0
    for (audio, sample_rate), track in zip(clips, tracks):
        audio = as_audio(audio, "reference")
        check_finite(audio, "reference")
        x = to_mono(audio).astype(np.float64)
        v = np.asarray(track.voiced, dtype=bool) & (np.asarray(track.f0) > 0)
        voiced_seconds += float(v.sum()) * track.hop
        if not v.any():
            continue
        f0s.append(np.asarray(track.f0)[v])
        step = max(1, int(round(STATS_PERIOD_MS / 1000.0 / track.hop)))
        idx = np.flatnonzero(v)[::step]
        t = np.asarray(track.times)[idx]
        keep = t < len(x) / sample_rate
        s, a = envelope_stats_frames(x, int(sample_rate), t[keep], np.asarray(track.f0)[idx][keep], aperiodicity=True)
        shapes.append(s)
        aps.append(a)
        band_limits.append(0.475 * sample_rate)
        loud = integrated_loudness(audio, int(sample_rate))
        if np.isfinite(loud):
            lufs_parts.append((loud, audio.shape[-1]))
    if not f0s or sum(len(s) for s in shapes) < N_CLASSES:
        raise InvalidReferenceError("the reference has no usable pitched voice (too few voiced frames)")
    all_shapes = np.concatenate(shapes)
    all_ap = np.concatenate(aps)
    if len(all_shapes) > MAX_FRAMES:
        sel = np.linspace(0, len(all_shapes) - 1, MAX_FRAMES).round().astype(int)
        all_shapes, all_ap = all_shapes[sel], all_ap[sel]
    centroids, weights = _kmeans(all_shapes, N_CLASSES)
    f0 = np.concatenate(f0s)
    register = measure_register(PitchTrack(times=np.arange(len(f0)) * 0.01, f0=f0, periodicity=np.ones(len(f0)),
                                           voiced=np.ones(len(f0), dtype=bool), hop=0.01), min_voiced_seconds=0.0)
    reg = {}
    for key in ("median", "p10", "p90", "low", "high"):
        value = float(getattr(register, key))
        reg[key] = {"note": midi_to_note(value), "hz": round(float(440.0 * 2 ** ((value - 69) / 12)), 2),
                    "midi": round(value, 3)}
    warnings = []
    if voiced_seconds < MIN_VOICED_SECONDS:
        warnings.append(f"only {voiced_seconds:.1f} s of voiced audio ({MIN_VOICED_SECONDS:.0f} s or more recommended)")
    lufs = None
    if lufs_parts:
        w = np.array([n for _, n in lufs_parts], dtype=np.float64)
        lufs = round(float(np.sum(w * np.array([l for l, _ in lufs_parts])) / w.sum()), 2)
    r2 = lambda a: [round(float(v), 2) for v in a]  # noqa: E731
    return VoiceProfile(
        name=name, register=reg, mean_shape_db=r2(all_shapes.mean(0)),
        class_shapes_db=[r2(c) for c in centroids], class_weights=[round(float(w), 4) for w in weights],
        aperiodicity_db=r2(all_ap.mean(0)), band_limit_hz=round(float(min(band_limits + [GRID_HZ[-1]])), 1),
        loudness_lufs=lufs, voiced_seconds=round(voiced_seconds, 2), clips=list(clip_names or []),
        created=time.strftime("%Y-%m-%d"), warnings=warnings, reference=join_clips(clips),
    )


# -- lookup -----------------------------------------------------------------------------------
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def profiles_dir() -> Path:
    """Where enrolled profiles live: ``$SINGVC_HOME/voices`` or ``~/.local/share/singvc/voices``."""
    home = os.environ.get("SINGVC_HOME")
    return Path(home) / "voices" if home else Path.home() / ".local" / "share" / "singvc" / "voices"


def check_name(name: str) -> str:
    """Validate a profile name (letters, digits, ``_ . -``; at most 64 characters)."""
    if not _NAME.match(name or ""):
        raise UserInputError(f"bad voice name {name!r}: use letters, digits, '_', '.', '-' (at most 64)")
    return name


def list_profiles() -> dict[str, Path]:
    """Known profile names -> files (user profiles override shipped presets of the same name)."""
    found: dict[str, Path] = {}
    for folder in (PRESETS_DIR, profiles_dir()):
        if folder.is_dir():
            for p in sorted(folder.glob("*.json")):
                found[p.stem] = p
    return found


def find_profile(name_or_path: str | os.PathLike) -> Path | None:
    """The profile file for a path to a ``.json`` file or a profile name; ``None`` if neither."""
    p = Path(name_or_path)
    if p.suffix.lower() == ".json" and p.is_file():
        return p
    return list_profiles().get(str(name_or_path))


def is_profile_ref(name_or_path: str | os.PathLike) -> bool:
    """True when ``--voice`` names a profile (a ``.json`` path or a known name) rather than a clip."""
    p = Path(name_or_path)
    return p.suffix.lower() == ".json" or (not p.exists() and str(name_or_path) in list_profiles())


def load_profile(name_or_path: str | os.PathLike) -> VoiceProfile:
    """Load a profile by name or path.

    Raises:
        UserInputError: not found (the message lists known names) or not a valid profile.
    """
    path = find_profile(name_or_path)
    if path is None:
        names = ", ".join(sorted(list_profiles())) or "none yet"
        raise UserInputError(f"no voice profile {str(name_or_path)!r} (known: {names}; "
                             f"enroll one with 'singvc voice enroll CLIP --name NAME')")
    return VoiceProfile.load(path)
