"""Music-aware evaluation of a converted vocal (what ``singvc eval`` prints).

Figures (all computed by :func:`evaluate`; the speaker encoder is passed in explicitly):

``similarity``
    Cosine similarity of resemblyzer speaker embeddings (GE2E, 256-d, 16 kHz, silences trimmed
    by its VAD): ``output_reference`` (output vs the reference clip the converter was given),
    ``output_heldout`` (vs a held-out clip of the target never seen by the converter: the honest
    one), ``output_source`` (vs the original vocal: how much of the singer is left),
    ``source_target`` and ``reference_heldout`` (the two anchors of *toward*).
``toward``
    ``(sim(out, target) − sim(source, target)) / (sim(reference, heldout) − sim(source, target))``,
    with target = the held-out clip (the reference when no held-out clip is given): 0 means the
    identity did not move toward the target, 1 means as close to the target as the target's
    own other clip; negative means it moved away.
``pitch``
    Contour error in cents between the output's pitch track and the source track shifted by the
    planned transposition, on frames voiced in both (median, P90; octave errors included).
``vibrato``
    Vibrato rate (Hz) and extent (cents, half peak-to-peak) of source and output, measured on the
    4-9 Hz band of the detrended contour of voiced runs ≥ 0.5 s; ``extent_ratio`` = output / source.
``voicing``
    ``voiced_kept``: share of the source's voiced frames still voiced in the output;
    ``agreement``: share of all frames with the same voiced/unvoiced decision.
``drift``
    Similarity of 5 s output windows (hop 2.5 s) to the target: mean, standard deviation (the
    drift figure: spread of identity over the song), first and last window.
``loudness``
    Integrated loudness (LUFS) of source and output and their difference.
"""
from __future__ import annotations

import numpy as np

from .audio import as_audio, resample, to_mono
from .errors import UserInputError
from .loudness import integrated_loudness
from .pitch import PitchTrack

ENCODER_RATE = 16_000


def load_encoder(device: str = "cpu"):
    """resemblyzer's ``VoiceEncoder`` (its weights ship inside the wheel; Apache-2.0).

    Raises:
        UserInputError: resemblyzer is not installed (with the install hint).
    """
    try:
        from resemblyzer import VoiceEncoder
    except ImportError:
        raise UserInputError("singvc eval needs resemblyzer: pip install 'singvc[eval]'") from None
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line when loaded
        return VoiceEncoder(device)


def _prepare(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 at 16 kHz, volume-normalised and with long silences trimmed (resemblyzer's VAD)."""
    from resemblyzer import preprocess_wav

    x = to_mono(as_audio(audio)).astype(np.float32)
    x = resample(x[None], sample_rate, ENCODER_RATE)[0] if sample_rate != ENCODER_RATE else x
    y = preprocess_wav(x.astype(np.float32), source_sr=ENCODER_RATE)
    return y if len(y) >= ENCODER_RATE // 2 else x


def embed(encoder, audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """L2-normalised speaker embedding ``[256]`` of ``audio`` (``[channels, samples]``)."""
    e = encoder.embed_utterance(_prepare(audio, sample_rate))
    return e / max(np.linalg.norm(e), 1e-12)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def toward(sim_out_target: float, sim_source_target: float, sim_reference_heldout: float) -> float:
    """How far identity moved from the source to the target (0 unchanged, 1 as close as the target itself)."""
    span = sim_reference_heldout - sim_source_target
    if abs(span) < 1e-6:
        return float("nan")
    return float((sim_out_target - sim_source_target) / span)


def _aligned(source: PitchTrack, output: PitchTrack) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = min(len(source), len(output))
    return (np.asarray(source.f0[:n], dtype=np.float64), np.asarray(source.voiced[:n], dtype=bool),
            np.asarray(output.f0[:n], dtype=np.float64), np.asarray(output.voiced[:n], dtype=bool))


def contour_error(source: PitchTrack, output: PitchTrack, semitones: float) -> dict:
    """Cents between the output contour and the source contour shifted by ``semitones``."""
    sf, sv, of, ov = _aligned(source, output)
    both = sv & ov & (sf > 0) & (of > 0)
    if not both.any():
        return {"median_cents": None, "p90_cents": None, "frames": 0}
    err = np.abs(1200.0 * np.log2(of[both] / sf[both]) - 100.0 * semitones)
    return {"median_cents": round(float(np.median(err)), 2), "p90_cents": round(float(np.percentile(err, 90)), 2),
            "frames": int(both.sum())}


def _vibrato_of(cents: np.ndarray, hop: float) -> tuple[float, float] | None:
    """(rate Hz, extent cents) of a voiced run's contour (cents), or None when too short."""
    n = len(cents)
    if n * hop < 0.5:
        return None
    x = cents - np.polyval(np.polyfit(np.arange(n), cents, 2), np.arange(n))
    x = x * np.hanning(n)
    nfft = max(1024, 1 << int(np.ceil(np.log2(n))))
    spec = np.abs(np.fft.rfft(x, nfft))
    freqs = np.fft.rfftfreq(nfft, hop)
    band = (freqs >= 4.0) & (freqs <= 9.0)
    if not band.any():
        return None
    k = np.flatnonzero(band)[np.argmax(spec[band])]
    # extent: amplitude of the band-passed contour (sine amplitude = sqrt(2) * RMS), window-corrected
    filt = np.zeros_like(spec, dtype=complex)
    full = np.fft.rfft(x, nfft)
    filt[band] = full[band]
    y = np.fft.irfft(filt, nfft)[:n]
    w = np.hanning(n)
    rms = np.sqrt(np.sum(y**2) / max(np.sum(w**2), 1e-9))
    return float(freqs[k]), float(np.sqrt(2.0) * rms)


def vibrato(source: PitchTrack, output: PitchTrack) -> dict:
    """Vibrato rate and extent of source and output on runs voiced in both (≥ 0.5 s), and their ratio."""
    sf, sv, of, ov = _aligned(source, output)
    both = sv & ov & (sf > 0) & (of > 0)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], both.astype(np.int8), [0]])))
    src, out, weights = [], [], []
    for a, b in zip(edges[::2], edges[1::2]):
        vs = _vibrato_of(1200.0 * np.log2(sf[a:b]), source.hop)
        vo = _vibrato_of(1200.0 * np.log2(of[a:b]), source.hop)
        if vs and vo:
            src.append(vs)
            out.append(vo)
            weights.append(b - a)
    if not src:
        return {"runs": 0, "rate_source_hz": None, "rate_output_hz": None, "extent_source_cents": None,
                "extent_output_cents": None, "extent_ratio": None}
    w = np.asarray(weights, dtype=np.float64)
    s, o = np.asarray(src), np.asarray(out)
    es, eo = float(np.average(s[:, 1], weights=w)), float(np.average(o[:, 1], weights=w))
    return {"runs": len(src), "rate_source_hz": round(float(np.average(s[:, 0], weights=w)), 2),
            "rate_output_hz": round(float(np.average(o[:, 0], weights=w)), 2),
            "extent_source_cents": round(es, 2), "extent_output_cents": round(eo, 2),
            "extent_ratio": round(eo / es, 3) if es > 0 else None}


def voicing(source: PitchTrack, output: PitchTrack) -> dict:
    """Share of source-voiced frames still voiced, and overall voiced/unvoiced agreement."""
    _, sv, _, ov = _aligned(source, output)
    kept = float((sv & ov).sum() / sv.sum()) if sv.any() else None
    return {"voiced_kept": round(kept, 4) if kept is not None else None,
            "agreement": round(float(np.mean(sv == ov)), 4) if len(sv) else None}


def drift(encoder, audio: np.ndarray, sample_rate: int, target: np.ndarray,
          window_seconds: float = 5.0, hop_seconds: float = 2.5) -> dict:
    """Similarity to ``target`` (an embedding) of ``window_seconds`` windows of ``audio``."""
    audio = as_audio(audio)
    n, win, hop = audio.shape[-1], int(window_seconds * sample_rate), int(hop_seconds * sample_rate)
    starts = list(range(0, max(n - win, 0) + 1, hop)) if n >= win else [0]
    sims = []
    for s in starts:
        seg = audio[:, s:s + win]
        if np.sqrt(np.mean(seg.astype(np.float64) ** 2)) < 1e-4:
            continue
        sims.append(cosine(embed(encoder, seg, sample_rate), target))
    if not sims:
        return {"windows": 0, "mean": None, "std": None, "first": None, "last": None}
    return {"windows": len(sims), "mean": round(float(np.mean(sims)), 4), "std": round(float(np.std(sims)), 4),
            "first": round(sims[0], 4), "last": round(sims[-1], 4)}


def evaluate(
    encoder,
    source: np.ndarray,
    output: np.ndarray,
    sample_rate: int,
    reference: np.ndarray,
    reference_rate: int,
    source_track: PitchTrack,
    output_track: PitchTrack,
    semitones: float,
    heldout: np.ndarray | None = None,
    heldout_rate: int | None = None,
    windows: bool = True,
) -> dict:
    """All the figures described in the module docstring, as a JSON-ready dict.

    Args:
        encoder: a resemblyzer ``VoiceEncoder`` (:func:`load_encoder`).
        source, output: float32 ``[channels, samples]`` at ``sample_rate`` Hz (the original and
            converted vocal, same length).
        reference: the clip the converter was given, at ``reference_rate``.
        source_track, output_track: pitch tracks of source and output (same model and hop).
        semitones: the planned transposition.
        heldout: a clip of the target not given to the converter (optional but recommended).
        windows: compute the 5 s drift figure.
    """
    source, output = as_audio(source, "source"), as_audio(output, "output")
    if source.shape[-1] != output.shape[-1]:
        raise UserInputError(f"source and output differ in length ({source.shape[-1]} vs {output.shape[-1]} samples)")
    e_src = embed(encoder, source, sample_rate)
    e_out = embed(encoder, output, sample_rate)
    e_ref = embed(encoder, reference, reference_rate)
    sims = {"output_reference": cosine(e_out, e_ref), "output_source": cosine(e_out, e_src),
            "source_reference": cosine(e_src, e_ref)}
    if heldout is not None:
        e_held = embed(encoder, heldout, heldout_rate or reference_rate)
        sims.update(output_heldout=cosine(e_out, e_held), source_heldout=cosine(e_src, e_held),
                    reference_heldout=cosine(e_ref, e_held))
        tw = toward(sims["output_heldout"], sims["source_heldout"], sims["reference_heldout"])
        target = e_held
    else:
        tw = toward(sims["output_reference"], sims["source_reference"], 1.0)
        target = e_ref
    src_lufs, out_lufs = integrated_loudness(source, sample_rate), integrated_loudness(output, sample_rate)
    fin = lambda v: round(float(v), 2) if np.isfinite(v) else None  # noqa: E731
    result = {
        "toward": round(tw, 4) if np.isfinite(tw) else None,
        "toward_target": "heldout" if heldout is not None else "reference",
        "similarity": {k: round(v, 4) for k, v in sims.items()},
        "pitch": {"semitones": semitones, **contour_error(source_track, output_track, semitones)},
        "vibrato": vibrato(source_track, output_track),
        "voicing": voicing(source_track, output_track),
        "loudness": {"source_lufs": fin(src_lufs), "output_lufs": fin(out_lufs),
                     "difference_db": fin(out_lufs - src_lufs) if np.isfinite(src_lufs) and np.isfinite(out_lufs) else None},
    }
    if windows:
        result["drift"] = drift(encoder, output, sample_rate, target)
    return result
