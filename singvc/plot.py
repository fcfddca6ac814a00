"""The range plot (``plan.png``): where the vocal sits against the target voice, before and after the shift.

One picture per run, drawn with matplotlib's Agg canvas (no display, no pyplot state, safe on
worker threads):

- the source vocal's pitch over time (voiced frames only),
- the converted vocal's pitch: the source moved by the planned shift (in a vocal feature, by each
  section's shift, original elsewhere), or a measured track when one is given,
- the target's tessitura as a band (P10 to P90 of its voiced frames) with its lowest and highest
  notes (P5, P95) as dashed lines,
- the planned shift, written in the title with the notes the median moves between.

The pitch axis is in notes (C3, E3, ...), the time axis in seconds. matplotlib is imported when
a plot is drawn, not when singvc is imported.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from .pitch import PitchTrack
from .plan import RangePlan, midi_to_note
from .run import write_bytes

#: colours (matplotlib's default cycle: readable on white, distinct for colour-blind viewers)
SOURCE_COLOUR = "#1f77b4"
CONVERTED_COLOUR = "#ff7f0e"
TARGET_COLOUR = "#2ca02c"
#: figure size in inches and resolution
SIZE = (9.0, 4.2)
DPI = 100


def voiced_midi(track: PitchTrack, semitones: "float | np.ndarray" = 0.0) -> np.ndarray:
    """The track's pitch in MIDI notes moved by ``semitones`` (a number, or one per frame), NaN on
    unvoiced frames (so a line breaks between phrases)."""
    midi = track.midi + semitones
    return np.where(track.voiced, midi, np.nan)


def section_shifts(track: PitchTrack, sections: list[dict]) -> np.ndarray:
    """Semitones per frame of ``track`` for a vocal feature's ``sections`` (report entries with
    ``placed`` [start, end] seconds and ``semitones``); 0 outside every section."""
    shift = np.zeros(len(track), dtype=np.float64)
    for sec in sections:
        start, end = sec["placed"]
        shift[(track.times >= start) & (track.times < end)] = float(sec.get("semitones") or 0.0)
    return shift


def note_ticks(low: float, high: float) -> tuple[list[float], list[str]]:
    """Tick positions (MIDI) and note names between ``low`` and ``high``: every C, E and G# for a
    wide span, every whole tone for a narrow one (about 6-14 labels)."""
    span = high - low
    step = 1 if span <= 10 else 2 if span <= 20 else 4
    first = int(np.ceil(low / step) * step)
    ticks = [float(m) for m in range(first, int(np.floor(high)) + 1, step)]
    return ticks, [midi_to_note(m) for m in ticks]


def _title(plan: RangePlan, sections: list[dict] | None) -> str:
    if sections:
        shifts = sorted({float(s.get("semitones") or 0.0) for s in sections if s.get("voice") != "original"})
        moved = ", ".join(f"{s:+g}" for s in shifts) or "none"
        return f"vocal feature: {len(sections)} sections, shifts {moved} semitones"
    text = f"planned shift {plan.semitones:+g} semitones ({plan.mode})"
    if plan.source is not None:
        text += (f": median {midi_to_note(plan.source.median)} -> "
                 f"{midi_to_note(plan.source.median + plan.semitones)}")
    return text


def range_figure(track: PitchTrack, plan: RangePlan, semitones: float | None = None,
                 converted: PitchTrack | None = None, sections: list[dict] | None = None,
                 title: str | None = None):
    """The range plot as a matplotlib ``Figure`` (Agg canvas attached).

    Args:
        track: the source vocal's pitch track.
        plan: the range plan (its target register gives the band; its shift the converted line).
        semitones: how far the converted vocal actually moved (default ``plan.semitones``; 0 for a
            converter that does not move the pitch).
        converted: a pitch track measured on the converted vocal, drawn instead of the shifted source.
        sections: a vocal feature's sections (report entries): each shifts its own span.
        title: a first title line (e.g. the song's name).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    shift = plan.semitones if semitones is None else semitones
    source = voiced_midi(track)
    if converted is not None:
        after, after_times = voiced_midi(converted), converted.times
        after_label = "converted (measured)"
    elif sections:
        after, after_times = voiced_midi(track, section_shifts(track, sections)), track.times
        after_label = "converted (each section's shift)"
    else:
        after, after_times = voiced_midi(track, shift), track.times
        after_label = f"converted (source {shift:+g} st)"
    shown = [v for v in (source, after) if np.isfinite(v).any()]
    ax.plot(track.times, source, color=SOURCE_COLOUR, lw=1.2, label="source vocal")
    ax.plot(after_times, after, color=CONVERTED_COLOUR, lw=1.2, label=after_label)
    bounds = [float(np.nanmin(v)) for v in shown] + [float(np.nanmax(v)) for v in shown]
    target = plan.target
    if target is not None:
        ax.axhspan(target.p10, target.p90, color=TARGET_COLOUR, alpha=0.18,
                   label=f"target tessitura {midi_to_note(target.p10)}-{midi_to_note(target.p90)} (P10-P90)")
        for edge in (target.low, target.high):
            ax.axhline(edge, color=TARGET_COLOUR, lw=0.8, ls="--")
        bounds += [target.low, target.high]
    if not bounds:
        ax.text(0.5, 0.5, "no pitched singing found", transform=ax.transAxes, ha="center", va="center")
        bounds = [48.0, 72.0]
    low, high = min(bounds) - 2.0, max(bounds) + 2.0
    ax.set_ylim(low, high)
    ticks, names = note_ticks(low, high)
    ax.set_yticks(ticks, names)
    end = float(track.times[-1]) if len(track) else 1.0
    ax.set_xlim(0.0, max(end, 1e-3))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("pitch (note)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title("\n".join(t for t in (title, _title(plan, sections)) if t), fontsize=10)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.85)
    fig.tight_layout()
    return fig


def range_png(track: PitchTrack, plan: RangePlan, **kwargs) -> bytes:
    """The range plot as PNG bytes (see :func:`range_figure` for the arguments)."""
    fig = range_figure(track, plan, **kwargs)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def save_range_plot(path: str | os.PathLike, track: PitchTrack, plan: RangePlan, **kwargs) -> Path:
    """Write the range plot to ``path`` (PNG, atomically); returns the path."""
    return write_bytes(path, range_png(track, plan, **kwargs))
