"""File-level jobs: read the inputs, run the engine, write the output folder atomically.

Every file is written into a hidden staging folder beside the output folder and moved in only
when all of them are complete (:func:`~singvc.run.staged_output`), so a failed run leaves
nothing in the output folder; full-length buffers stream through a working folder on the same
disk (:func:`~singvc.run.scratch_folder`), so memory stays flat as songs get longer.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .audio import (
    DiskAudio, headroom_gain_db, headroom_warning, load_audio, load_audio_to_disk, new_like, peak_dbfs, resample_into,
    save_audio, turned_down_together,
)
from .cover import CoverResult, Singvc, report_number
from .engine import Engine, load_voice
from .errors import UserInputError
from .jsonio import write_json
from .plot import save_range_plot
from .run import Timer, buffer_path, scratch_folder, staged_output
from .runfolders import OUTPUT_FILES, SPLIT_FILES, audio_bytes, check_output_dir, plan_aside
from .session import cover_session, stems_session, write_session, write_session_folder
from .voice import VoiceProfile

#: full-length float32 buffers a cover run keeps on disk at most (working folder and outputs), for
#: the free-space check made before the work; a DAW session adds every stem again
RUN_BUFFERS = 10
DAW_BUFFERS = 6
#: more of them when the vocal is split (residual, lead, backing, the converted backing and its
#: transposition, lead + backing, dereverbed and converted-dry lead)
BACKING_BUFFERS = 8
#: float32 buffers of the song's length that separate and stems keep on the output's disk at most
SEPARATE_BUFFERS = 6
STEMS_BUFFERS = 10
#: the outputs written even with ``stems=False``
ALWAYS_WRITTEN = ("mix.wav", "plan.png", "report.json")


def headroom(together: dict[str, "np.ndarray | DiskAudio"], bit_depth: str,
             mix: "np.ndarray | DiskAudio | None" = None) -> tuple[float, float, dict, str | None]:
    """One gain (dB, <= 0) for outputs that belong together (stems that add up to a mix), so that
    none of them is clipped in ``bit_depth``; returns ``(gain_db, mix_gain_db, report entry, warning
    or None)``.

    32-bit float holds any level: nothing is scaled, and outputs above full scale are only
    reported. ``mix`` (limited on its own by :func:`~singvc.loudness.remix`) gets its own gain
    (``mix_gain_db``), non-zero only when it was made for another format. Peaks are measured
    block by block.
    """
    peaks = {name: peak_dbfs(audio) for name, audio in together.items()}
    top = max(peaks.values(), default=float("-inf"))
    gain = headroom_gain_db(top, bit_depth)
    mix_peak = peak_dbfs(mix) if mix is not None else float("-inf")
    mix_gain = headroom_gain_db(mix_peak, bit_depth)
    pcm = bit_depth != "32f"
    names = ", ".join(n.removesuffix(".wav") for n in together)
    info = {"gain_db": round(gain, 3), "sample_format": "pcm" if pcm else "float", "peak_dbfs": report_number(top),
            "applies_to": list(together), "mix_gain_db": round(mix_gain, 3), "mix_peak_dbfs": report_number(mix_peak)}
    warning = None
    if gain < 0 or mix_gain < 0:
        parts = []
        if gain < 0:
            parts.append(turned_down_together(names, top, gain))
        if mix_gain < 0:
            parts.append(f"mix.wav peaks at {mix_peak:+.1f} dBFS and is written {-mix_gain:.1f} dB lower")
        warning = headroom_warning(parts, bit_depth)
        info["note"] = warning
    elif not pcm and max(top, mix_peak) > 0.0:
        warning = (f"outputs peak above full scale ({max(top, mix_peak):+.1f} dBFS); written as 32-bit float, "
                   "nothing scaled: lower the level before converting them to PCM")
        info["note"] = "32-bit float output: nothing scaled; " + warning.split(";")[0]
    else:
        info["note"] = ("32-bit float output: nothing needs scaling" if not pcm
                        else "every output within full scale: nothing scaled")
    return gain, mix_gain, info, warning


def save_together(folder: str | os.PathLike, outputs: dict[str, "np.ndarray | DiskAudio"], sample_rate: int,
                  bit_depth: str = "24") -> tuple[dict, str | None]:
    """Write WAVs that belong together (stems that add up to a song; ``{file name: audio}``) into
    ``folder`` with one common headroom gain (see :func:`headroom`); returns ``(headroom entry,
    warning or None)``."""
    gain, _, info, warning = headroom(outputs, bit_depth)
    for name, audio in outputs.items():
        save_audio(Path(folder) / name, audio, sample_rate, bit_depth, gain_db=gain)
    return info, warning


def load_input(path: str | os.PathLike, scratch: Path | None = None, name: str = "input") -> tuple[np.ndarray, int]:
    """Read an audio file: into memory, or with a ``scratch`` folder block by block into a
    :class:`~singvc.audio.DiskAudio` file there (``name.npy``)."""
    if scratch is None:
        return load_audio(path)
    return load_audio_to_disk(path, buffer_path(scratch, name))


def load_stems(vocals_path: str | os.PathLike, instrumental_path: str | os.PathLike | None,
               scratch: Path | None = None) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Read user stems; the instrumental is resampled to the vocal's rate if needed."""
    vocals, sample_rate = load_input(vocals_path, scratch, "vocals")
    instrumental = None
    if instrumental_path is not None:
        instrumental, inst_rate = load_input(instrumental_path, scratch, "instrumental_input")
        if inst_rate != sample_rate:
            length = int(round(instrumental.shape[-1] * sample_rate / inst_rate))
            resampled = new_like(instrumental, buffer_path(scratch, "instrumental_resampled"),
                                 (instrumental.shape[0], length))
            resample_into(lambda a, b, x=instrumental: x[:, a:b], instrumental.shape[-1], inst_rate,
                          resampled, sample_rate)
            instrumental = resampled
    return vocals, instrumental, sample_rate


def load_song_or_stems(song_path: str | os.PathLike | None, vocals_path: str | os.PathLike | None,
                       instrumental_path: str | os.PathLike | None, scratch: Path | None = None,
                       ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, int]:
    """A job's audio input as ``(song, vocals, instrumental, sample_rate)``: the user's stems when
    ``vocals_path`` is given (``song`` None), else the song (``vocals``, ``instrumental`` None)."""
    if vocals_path is not None:
        vocals, instrumental, sample_rate = load_stems(vocals_path, instrumental_path, scratch)
        return None, vocals, instrumental, sample_rate
    song, sample_rate = load_input(song_path, scratch, "song")
    return song, None, None, sample_rate


def cover_file(
    song_path: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    voice_path: str | os.PathLike | None = None,
    engine: Singvc | None = None,
    vocals_path: str | os.PathLike | None = None,
    instrumental_path: str | os.PathLike | None = None,
    daw: bool = False,
    profile: VoiceProfile | None = None,
    extra_report: dict | None = None,
    stems: bool = True,
) -> dict:
    """Read the inputs, run :meth:`Singvc.cover`, write the outputs into ``out_dir``; returns the report.

    With ``daw``, also a DAW session folder ``out_dir/session/`` (see :mod:`singvc.session`): every
    Demucs stem, both vocals, melody MIDI, tempo and key, ``.dawproject`` and ``.rpp`` files.
    ``profile`` is an already-measured voice (instead of reading ``voice_path``); ``extra_report``
    is merged into the report; ``stems=False`` writes only ``mix.wav`` and ``report.json``.
    """
    engine = engine or Singvc()
    timer = Timer()
    if song_path is None and vocals_path is None:
        raise UserInputError("give a song, or --vocals (and --instrumental)")
    # output problems are found now, not after the whole job
    check_output_dir(out_dir, estimate_run_bytes(song_path or vocals_path, daw,
                                                 engine.settings.backing != "off" or engine.settings.dereverb))
    engine.converter()  # a converter that cannot run here (weights missing) stops the job now
    # every full-length buffer lives in a working folder on disk and each stage streams through
    # it: memory stays flat as songs get longer
    with scratch_folder(out_dir) as scratch:
        with timer.stage("load"):
            reference, reference_rate = (None, None)
            if profile is None and voice_path is not None:
                ref = load_voice(voice_path)
                profile, reference, reference_rate = ref.profile, ref.audio, ref.sample_rate
            song, vocals, instrumental, sample_rate = load_song_or_stems(song_path, vocals_path,
                                                                         instrumental_path, scratch)
        result = engine.cover(song, sample_rate, reference, reference_rate, vocals=vocals,
                              instrumental=instrumental, keep_stems=daw, voice=profile, scratch=scratch)
        inputs = {"song": str(song_path) if song_path else None, "voice": str(voice_path) if voice_path else None,
                  "vocals": str(vocals_path) if vocals_path else None,
                  "instrumental": str(instrumental_path) if instrumental_path else None}
        return save_result(result, out_dir, engine.settings.bit_depth, daw=daw,
                           title=Path(song_path or vocals_path).stem, inputs=inputs, timer=timer,
                           extra_report=extra_report, stems=stems)


def estimate_run_bytes(input_path: str | os.PathLike | None, daw: bool = False, backing: bool = False) -> int:
    """About how many bytes a cover run of the audio file ``input_path`` needs on the output's
    disk at most (working buffers and outputs; ``backing``: the vocal is split or dereverbed);
    0 when the file cannot be read here."""
    return audio_bytes(input_path) * (RUN_BUFFERS + (DAW_BUFFERS if daw else 0) + (BACKING_BUFFERS if backing else 0))


def save_result(
    result: CoverResult,
    out_dir: str | os.PathLike,
    bit_depth: str = "24",
    daw: bool = False,
    title: str = "singvc",
    inputs: dict | None = None,
    timer: Timer | None = None,
    extra_report: dict | None = None,
    stems: bool = True,
    midi: bool = True,
) -> dict:
    """Write a :class:`CoverResult` into ``out_dir`` atomically (WAVs, the range plot ``plan.png``
    (:mod:`singvc.plot`), ``report.json``, with ``daw`` the ``session/`` folder; ``stems=False``:
    only ``mix.wav``, ``plan.png`` and ``report.json``); returns the report written.

    Outputs of an earlier run in ``out_dir`` that this one does not write (a ``session/``, stems)
    are moved with the earlier report into ``out_dir/previous-run-*/``; the report's
    ``previous_run`` says what was moved.

    Nothing is clipped: for PCM, the stems that belong together (both vocals, the instrumental and,
    with ``daw``, every session stem) share one headroom gain when any of them peaks above full
    scale, so they still add up; it is recorded as ``headroom_gain_db`` in the report and
    announced in its warnings. ``mix.wav`` keeps the ceiling :func:`~singvc.loudness.remix` gave it.
    """
    timer = timer or Timer()
    report = result.report
    outputs = [n for n in OUTPUT_FILES if (stems or n in ALWAYS_WRITTEN)
               and (n not in SPLIT_FILES or n in result.extra_stems)] + (["session"] if daw else [])
    aside = plan_aside(out_dir, outputs, protect=(inputs or {}).values())
    with staged_output(out_dir, aside) as staging:
        with timer.stage("write"):
            together = {name: audio for name, audio in result.stems().items()
                        if name != "mix.wav" and (stems or daw)}
            if daw:
                together.update({f"session/{k}": v for k, v in result.separated.items() if k != "vocals"})
            gain, mix_gain, report["headroom"], warning = headroom(together, bit_depth, result.mix)
            report["headroom_gain_db"] = report["headroom"]["gain_db"]
            if warning:
                report.setdefault("warnings", []).append(warning)
            for name, audio in result.stems().items():
                if stems or name == "mix.wav":
                    save_audio(staging / name, audio, result.sample_rate, bit_depth,
                               gain_db=mix_gain if name == "mix.wav" else gain)
        with timer.stage("plot"):
            save_range_plot(staging / "plan.png", result.pitch, result.plan, semitones=result.vocal_shift,
                            sections=report.get("sections"), title=title)
        if daw:
            with timer.stage("session"):
                session = cover_session(result, title=f"{title} (singvc cover)", name=title, midi=midi)
                session.headroom_gain_db = gain
                manifest = write_session(staging / "session", session, bit_depth)
            report["session"] = {"folder": "session", "tempo_bpm": manifest["tempo_bpm"], "key": manifest["keys"],
                                 "dawproject": manifest["dawproject"], "reaper": manifest["reaper"]}
        report["inputs"] = dict(inputs or {})
        report["seconds"] = {**{k: round(v, 3) for k, v in timer.seconds.items()}, **report["seconds"]}
        report["seconds"]["total"] = round(sum(v for k, v in report["seconds"].items()), 3)
        report["peak_memory_mb"] = {**timer.peak_mb, **report.get("peak_memory_mb", {})}
        report["outputs"] = outputs
        if aside.names:
            report["previous_run"] = {**aside.describe(), "note": "outputs of an earlier run in this folder that "
                                      "this run does not write, moved aside with the earlier report"}
        report.update(extra_report or {})
        write_json(staging / "report.json", report)
    return report


def separate_file(song_path: str | os.PathLike, out_dir: str | os.PathLike, engine: Engine) -> str | None:
    """``vocals.wav`` and ``instrumental.wav`` of a song into ``out_dir`` (atomically, one headroom
    gain for both); returns the headroom warning, if any."""
    out_dir = Path(out_dir)
    check_output_dir(out_dir, audio_bytes(song_path) * SEPARATE_BUFFERS)
    with scratch_folder(out_dir) as scratch:  # the song and stems stream through disk: flat memory
        song, sample_rate = load_input(song_path, scratch, "song")
        vocals, instrumental, _ = engine.separate(song, sample_rate, scratch)
        with staged_output(out_dir, protect=(song_path,)) as staging:
            _, warning = save_together(staging, {"vocals.wav": vocals, "instrumental.wav": instrumental},
                                       sample_rate, engine.settings.bit_depth)
    return warning


def stems_file(song_path: str | os.PathLike, out_dir: str | os.PathLike, engine: Engine, midi: bool = True) -> dict:
    """A DAW session of a song's separation into ``out_dir``: every Demucs stem, the vocal's
    melody MIDI (unless ``midi`` is false), tempo and key; returns the session manifest."""
    out_dir = Path(out_dir)
    check_output_dir(out_dir, audio_bytes(song_path) * STEMS_BUFFERS)
    title = Path(song_path).stem
    with scratch_folder(out_dir) as scratch:  # the song and stems stream through disk: flat memory
        song, sample_rate = load_input(song_path, scratch, "song")
        separated, _ = engine.separate_all(song, sample_rate, scratch)
        pitch = engine.track(separated["vocals"], sample_rate)[0] if midi else None
        return write_session_folder(
            out_dir, stems_session(song, sample_rate, separated, pitch, title=f"{title} (singvc stems)", name=title,
                                   instrumental_path=scratch / "instrumental.npy"),
            engine.settings.bit_depth, protect=(song_path,))
