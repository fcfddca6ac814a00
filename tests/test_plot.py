"""The range plot (plan.png): drawn from a pitch track and a plan, without a display."""
from __future__ import annotations

import numpy as np
import pytest

from singvc.pitch import PitchTrack
from singvc.plan import parse_range, plan_transposition
from singvc.plot import note_ticks, range_figure, range_png, save_range_plot, section_shifts, voiced_midi

PNG = b"\x89PNG\r\n\x1a\n"


def track(seconds: float = 4.0, center_hz: float = 220.0, voiced_share: float = 0.8) -> PitchTrack:
    t = np.arange(0, seconds, 0.01)
    f0 = center_hz * 2 ** (2 * np.sin(2 * np.pi * 0.5 * t) / 12)
    return PitchTrack(times=t, f0=f0, periodicity=np.ones_like(t), voiced=(t % 1.0) < voiced_share, hop=0.01)


def test_lines_band_and_shift_follow_the_plan():
    tr = track()
    plan = plan_transposition(tr, parse_range("C4-A5"))  # an octave above A3: key-lock moves +12
    assert plan.semitones == 12
    fig = range_figure(tr, plan, title="song")
    ax = fig.axes[0]
    source, converted = (line.get_ydata() for line in ax.get_lines()[:2])
    voiced = tr.voiced
    np.testing.assert_allclose(converted[voiced] - source[voiced], 12.0)
    assert np.isnan(source[~voiced]).all() and np.isnan(converted[~voiced]).all()  # breaks between phrases
    band = [p for p in ax.patches]  # axhspan: the tessitura P10-P90
    assert len(band) == 1
    low, high = band[0].get_y(), band[0].get_y() + band[0].get_height()  # a Rectangle in data units on y
    assert low == pytest.approx(plan.target.p10) and high == pytest.approx(plan.target.p90)
    assert "+12 semitones" in ax.get_title() and "song" in ax.get_title()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert all(label[0] in "ABCDEFG" for label in labels) and "C4" in labels  # notes on the axis
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("C4-A5" in text for text in legend)


def test_actual_shift_differs_from_plan_when_the_converter_keeps_the_pitch():
    tr = track()
    plan = plan_transposition(tr, parse_range("C4-A5"))
    ax = range_figure(tr, plan, semitones=0.0).axes[0]
    source, converted = (line.get_ydata() for line in ax.get_lines()[:2])
    np.testing.assert_array_equal(source, converted)


def test_feature_sections_shift_their_own_spans():
    tr = track()
    sections = [{"voice": "original", "placed": [0.0, 2.0], "semitones": 0.0},
                {"voice": "guest", "placed": [2.0, 4.0], "semitones": -5.0}]
    shift = section_shifts(tr, sections)
    assert (shift[tr.times < 2.0] == 0).all() and (shift[tr.times >= 2.0] == -5).all()
    plan = plan_transposition(tr, None, transpose=-5.0)
    ax = range_figure(tr, plan, sections=sections).axes[0]
    converted = ax.get_lines()[1].get_ydata()
    np.testing.assert_allclose(converted, voiced_midi(tr, shift), equal_nan=True)
    assert "-5" in ax.get_title()


def test_no_voiced_frames_and_no_target_still_draw(tmp_path):
    tr = track(voiced_share=0.0)
    plan = plan_transposition(tr, None)
    path = save_range_plot(tmp_path / "plan.png", tr, plan)
    assert path.read_bytes().startswith(PNG)
    assert not list(tmp_path.glob(".*"))  # written atomically: no temporary file left


def test_png_bytes_and_ticks():
    tr = track()
    assert range_png(tr, plan_transposition(tr, parse_range("C3-C4"))).startswith(PNG)
    ticks, names = note_ticks(47.5, 84.5)  # a wide span: C, E, G# steps of 4 semitones
    assert ticks[0] == 48 and all(b - a == 4 for a, b in zip(ticks, ticks[1:])) and names[0] == "C3"
    ticks, _ = note_ticks(60, 66)
    assert all(b - a == 1 for a, b in zip(ticks, ticks[1:]))


def test_matplotlib_is_not_imported_with_singvc():
    import subprocess
    import sys

    code = "import sys, singvc.cli, singvc.jobs; print('matplotlib' in sys.modules, 'gradio' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["False", "False"], done.stderr[-2000:]
