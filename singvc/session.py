"""DAW session export: numbered stems, melody MIDI, a DAWproject file, a REAPER project, a manifest.

A session folder holds:

- ``01_<role>.wav`` ... : every stem as WAV (24-bit by default), one sample rate, identical length,
  all starting at sample 0, numbered in track order;
- ``NN_<role>.mid``: melody MIDI files (see :mod:`singvc.midi`), after the stems;
- ``<name>.dawproject``: the open DAWproject exchange format (Bitwig Studio, Studio One, Cubase,
  ...): a zip of ``project.xml``, ``metadata.xml`` and the stems under ``audio/``; one track per
  stem (muted ones muted), melodies as native notes with pitch bend as ``pitchBend`` points
  (unit ``normalized``, -1..1 = the full bend range), tempo and 4/4 in the transport;
- ``<name>.rpp``: a REAPER project with the same tracks, referring to the WAV and MIDI files beside it;
- ``session.json``: the manifest (files, roles, sample rate, bit depth, length, tempo, key, loudness).

Nothing is clipped: in PCM, stems that peak above full scale are all turned down by one common gain
(``headroom_gain_db`` in the manifest), so they still add up.

Three layers: :func:`write_session` writes into a folder as given (a staging folder);
:func:`write_session_folder` stages and moves it into place atomically; :func:`cover_session` and
:func:`stems_session` pick the tracks for ``singvc cover --daw`` and ``singvc stems``.
"""
from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

import numpy as np

from . import __version__
from .analysis import Key, estimate_key, estimate_tempo, transpose_key
from .audio import (
    as_audio, difference, fit_length, headroom_gain_db, headroom_warning, peak_dbfs, save_audio,
    turned_down_together,
)
from .errors import InvalidAudioError, OutputError
from .jsonio import dumps as json_dumps
from .loudness import integrated_loudness
from .run import atomic_write, staged_output, write_text
from .midi import PPQ, Melody, melody_from_track, melody_to_midi, save_midi

if TYPE_CHECKING:
    from .cover import CoverResult
    from .pitch import PitchTrack

MANIFEST = "session.json"
FORMAT = "singvc-session/1"
#: DAWproject format version written
DAWPROJECT_VERSION = "1.0"
#: track colours by role (DAWproject and REAPER)
COLORS = {
    "vocals_converted": "#e8553e", "vocals_original": "#f0a33a", "vocals": "#f0a33a", "drums": "#3e8fe8",
    "bass": "#7a4fe0", "other": "#3ec28f", "instrumental": "#8a8a8a", "mix": "#5a5a5a",
    "melody_converted": "#e8553e", "melody_original": "#f0a33a", "vocals_lead": "#f0c03a",
    "vocals_backing": "#c0a070",
}
BIT_DEPTH_NAMES = {"16": 16, "24": 24, "32f": 32}


@dataclass
class Stem:
    """One audio track: float32 ``[channels, samples]``; ``source`` names the Demucs stem it is.
    ``headroom``: takes the session's common headroom gain (False for a mix limited on its own,
    which only gets a gain of its own if it would not fit the format)."""

    role: str
    name: str
    audio: np.ndarray
    muted: bool = False
    source: str | None = None
    headroom: bool = True


@dataclass
class MelodyPart:
    """One MIDI track."""

    role: str
    name: str
    melody: Melody
    muted: bool = False


@dataclass
class Session:
    """What goes into a session folder. ``key`` is the song's key; ``extra`` goes into the manifest."""

    stems: list[Stem]
    sample_rate: int
    tempo_bpm: float
    key: Key | None = None
    melodies: list[MelodyPart] = field(default_factory=list)
    title: str = "singvc session"
    name: str = "session"
    extra: dict = field(default_factory=dict)
    #: one gain (dB) for every ``headroom`` stem; ``None``: the gain that keeps them within full
    #: scale in PCM (see :func:`singvc.audio.headroom_gain_db`)
    headroom_gain_db: float | None = None


def _one_line(text: str) -> str:
    """``text`` with control characters and line breaks (any that :meth:`str.splitlines` splits
    at) made spaces: a song name may hold them, a project file's line or XML text may not."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+", " ", str(text)).strip()


def _safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return name or "session"


def analyse(song: np.ndarray, sample_rate: int) -> tuple[float, Key]:
    """Tempo (BPM) and key of a song."""
    return estimate_tempo(song, sample_rate), estimate_key(song, sample_rate)


# -- the session folder ------------------------------------------------------------------------------
def write_session(folder: str | os.PathLike, session: Session, bit_depth: str = "24") -> dict:
    """Write ``session`` into ``folder`` (created if needed); returns the manifest.

    Every stem is trimmed or zero-padded to the longest one. Files are written one by one (each
    atomically); use :func:`write_session_folder` for an all-or-nothing folder. In PCM, stems that
    would go beyond full scale are turned down together (``session.headroom_gain_db``); each
    stem's ``gain_db``, loudness and peak in the manifest are those of the file written.

    Raises:
        InvalidAudioError: no stems, or a stem with a bad shape or no samples.
        OutputError: a file cannot be written.
    """
    if not session.stems:
        raise InvalidAudioError("a session needs at least one stem")
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create session folder {folder}: {exc.strerror}") from exc
    rate = int(session.sample_rate)
    audios = [as_audio(s.audio, s.name) for s in session.stems]
    length = max(a.shape[-1] for a in audios)
    if length == 0:
        raise InvalidAudioError("the session's stems hold no samples")
    # stems of one run share their length; others are trimmed or padded (in memory)
    audios = [a if a.shape[-1] == length else fit_length(np.asarray(a), length) for a in audios]
    seconds = length / rate
    name = _safe_name(session.name)

    peaks = [peak_dbfs(a) for a in audios]
    common, warning = session.headroom_gain_db, None
    if common is None:
        top = max((p for p, st in zip(peaks, session.stems) if st.headroom), default=float("-inf"))
        common = headroom_gain_db(top, bit_depth)
        if common < 0:
            warning = headroom_warning([turned_down_together("the stems", top, common)], bit_depth)
    stems_info: list[dict] = []
    for i, (stem, audio, peak) in enumerate(zip(session.stems, audios, peaks), start=1):
        file = f"{i:02d}_{_safe_name(stem.role)}.wav"
        gain = common if stem.headroom else headroom_gain_db(peak, bit_depth)
        save_audio(folder / file, audio, rate, bit_depth, gain_db=gain)
        lufs = integrated_loudness(audio, rate) + gain
        peak += gain
        stems_info.append({
            "file": file, "track": stem.name, "role": stem.role, "demucs_source": stem.source,
            "channels": int(audio.shape[0]), "muted": stem.muted,
            "loudness_lufs": round(lufs, 2) if np.isfinite(lufs) else None,
            "peak_dbfs": round(peak, 2) if np.isfinite(peak) else None,
            "gain_db": round(gain, 3),
        })
    midi_info: list[dict] = []
    for j, part in enumerate(session.melodies, start=len(session.stems) + 1):
        file = f"{j:02d}_{_safe_name(part.role)}.mid"
        save_midi(folder / file, melody_to_midi(part.melody, session.tempo_bpm, name=part.name))
        midi_info.append({"file": file, "track": part.name, "role": part.role, "muted": part.muted,
                          "notes": len(part.melody.notes), "ppq": PPQ,
                          "bend_range_semitones": part.melody.bend_range})

    dawproject = f"{name}.dawproject"
    _write_dawproject(folder / dawproject, folder, session, stems_info, midi_info, seconds)
    rpp = f"{name}.rpp"
    write_text(folder / rpp, reaper_project(session, stems_info, midi_info, seconds))
    manifest = {
        "format": FORMAT,
        "singvc": __version__,
        "title": session.title,
        "sample_rate": rate,
        "bit_depth": BIT_DEPTH_NAMES.get(bit_depth, bit_depth),
        "sample_format": "float" if bit_depth == "32f" else "pcm",
        "headroom_gain_db": round(common, 3),
        "headroom_warning": warning,
        "length_samples": int(length),
        "seconds": round(seconds, 6),
        "tempo_bpm": session.tempo_bpm,
        "time_signature": "4/4",
        "key": session.key.describe() if session.key else None,
        "stems": stems_info,
        "midi": midi_info,
        "dawproject": dawproject,
        "reaper": rpp,
        **session.extra,
    }
    write_text(folder / MANIFEST, json_dumps(manifest) + "\n")
    return manifest


def write_session_folder(out_dir: str | os.PathLike, session: Session, bit_depth: str = "24",
                         protect: tuple = ()) -> dict:
    """:func:`write_session` into a staging folder, moved into ``out_dir`` only when complete.

    Outputs of an earlier run in ``out_dir`` (files its ``session.json`` or ``report.json`` list,
    singvc's output names) that the new session does not write are moved into
    ``out_dir/previous-run-*/`` (see :func:`~singvc.pipeline.staged_output`; never the ``protect``
    paths, this run's inputs); nothing else in ``out_dir`` is touched.
    """
    with staged_output(out_dir, protect=protect) as staging:
        manifest = write_session(staging, session, bit_depth)
    return manifest


# -- DAWproject ----------------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return f"{float(x):.6f}".rstrip("0").rstrip(".") if np.isfinite(x) else "0"


class _Ids:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"id{self.n}"


def dawproject_xml(session: Session, stems_info: list[dict], midi_info: list[dict], seconds: float,
                   audio_folder: str = "audio") -> tuple[bytes, bytes]:
    """``(project.xml, metadata.xml)`` for the session; audio paths are ``audio_folder/<file>``."""
    ids = _Ids()
    beats_per_second = session.tempo_bpm / 60.0
    total_beats = seconds * beats_per_second
    project = ET.Element("Project", version=DAWPROJECT_VERSION)
    ET.SubElement(project, "Application", name="singvc", version=__version__)
    transport = ET.SubElement(project, "Transport")
    ET.SubElement(transport, "Tempo", id=ids(), name="Tempo", unit="bpm", min="20", max="666",
                  value=_fmt(session.tempo_bpm))
    ET.SubElement(transport, "TimeSignature", id=ids(), numerator="4", denominator="4")
    structure = ET.SubElement(project, "Structure")
    master_track = ET.Element("Track", id=ids(), name="Master", contentType="audio notes", loaded="true")
    master = ET.SubElement(master_track, "Channel", id=ids(), audioChannels="2", role="master", solo="false")
    _channel_params(master, ids, muted=False)

    tracks: list[tuple[str, dict, str]] = []  # (track id, info, kind)
    entries = [(info, "audio") for info in stems_info] + [(info, "notes") for info in midi_info]
    for info, kind in entries:
        track = ET.SubElement(structure, "Track", id=ids(), name=info["track"], contentType=kind, loaded="true",
                              color=COLORS.get(info["role"], "#a0a0a0"))
        channels = str(info.get("channels", 2)) if kind == "audio" else "2"
        channel = ET.SubElement(track, "Channel", id=ids(), audioChannels=channels, role="regular",
                                destination=master.get("id"), solo="false")
        _channel_params(channel, ids, muted=info["muted"])
        tracks.append((track.get("id"), info, kind))
    structure.append(master_track)

    arrangement = ET.SubElement(project, "Arrangement", id=ids())
    lanes = ET.SubElement(arrangement, "Lanes", id=ids(), timeUnit="beats")
    melodies = {part.role: part.melody for part in session.melodies}
    for track_id, info, kind in tracks:
        lane = ET.SubElement(lanes, "Lanes", id=ids(), track=track_id)
        clips = ET.SubElement(lane, "Clips", id=ids())
        clip = ET.SubElement(clips, "Clip", name=info["track"], time="0", duration=_fmt(total_beats), playStart="0")
        if kind == "audio":
            warps = ET.SubElement(clip, "Warps", id=ids(), timeUnit="beats", contentTimeUnit="seconds")
            audio = ET.SubElement(warps, "Audio", id=ids(), algorithm="raw", channels=str(info["channels"]),
                                  sampleRate=str(session.sample_rate), duration=_fmt(seconds))
            ET.SubElement(audio, "File", path=f"{audio_folder}/{info['file']}")
            ET.SubElement(warps, "Warp", time="0", contentTime="0")
            ET.SubElement(warps, "Warp", time=_fmt(total_beats), contentTime=_fmt(seconds))
        else:
            melody = melodies[info["role"]]
            content = ET.SubElement(clip, "Lanes", id=ids(), timeUnit="beats")
            notes = ET.SubElement(content, "Notes", id=ids())
            for note in melody.notes:
                ET.SubElement(notes, "Note", time=_fmt(note.start * beats_per_second),
                              duration=_fmt((note.end - note.start) * beats_per_second), channel="0",
                              key=str(note.key), vel=_fmt(note.velocity / 127), rel=_fmt(note.velocity / 127))
            if len(melody.bend_times):
                points = ET.SubElement(content, "Points", id=ids(), unit="normalized")
                ET.SubElement(points, "Target", expression="pitchBend", channel="0")
                for t, value in _thin_bends(melody):
                    ET.SubElement(points, "RealPoint", time=_fmt(t * beats_per_second), value=_fmt(value),
                                  interpolation="linear")
    meta = ET.Element("MetaData")
    ET.SubElement(meta, "Title").text = _one_line(session.title)
    ET.SubElement(meta, "Comment").text = (
        f"Made by singvc {__version__}; tempo {session.tempo_bpm:g} BPM"
        + (f"; key {session.key.name}" if session.key else ""))
    for element in (project, meta):
        ET.indent(element)
    return (ET.tostring(project, encoding="utf-8", xml_declaration=True),
            ET.tostring(meta, encoding="utf-8", xml_declaration=True))


def _channel_params(channel: ET.Element, ids: _Ids, muted: bool) -> None:
    ET.SubElement(channel, "Mute", id=ids(), name="Mute", value="true" if muted else "false")
    ET.SubElement(channel, "Pan", id=ids(), name="Pan", unit="normalized", min="0", max="1", value="0.5")
    ET.SubElement(channel, "Volume", id=ids(), name="Volume", unit="linear", min="0", max="2", value="1")


def _thin_bends(melody: Melody, step_cents: float = 1.0) -> list[tuple[float, float]]:
    """Bend points (seconds, -1..1) keeping a point when it moves by ``step_cents`` or starts a note."""
    out: list[tuple[float, float]] = []
    starts = {round(n.start, 6) for n in melody.notes}
    step = step_cents / 100.0
    last = None
    for t, value in zip(melody.bend_times, melody.bend_semitones):
        if last is None or abs(value - last) >= step or round(t, 6) in starts:
            out.append((float(t), float(value) / melody.bend_range))
            last = value
    return out


def _write_dawproject(path: Path, folder: Path, session: Session, stems_info: list[dict], midi_info: list[dict],
                      seconds: float) -> None:
    project_xml, metadata_xml = dawproject_xml(session, stems_info, midi_info, seconds)
    with atomic_write(path) as tmp:
        with zipfile.ZipFile(tmp, "w") as z:
            z.writestr("project.xml", project_xml, compress_type=zipfile.ZIP_DEFLATED)
            z.writestr("metadata.xml", metadata_xml, compress_type=zipfile.ZIP_DEFLATED)
            for info in stems_info:  # PCM barely compresses: store it
                z.write(folder / info["file"], f"audio/{info['file']}", compress_type=zipfile.ZIP_STORED)


# -- REAPER ----------------------------------------------------------------------------------------------
def _reaper_color(hex_color: str) -> int:
    """REAPER's PEAKCOL: 0x01BBGGRR (the high bit says 'custom colour')."""
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return 0x1000000 | (b << 16) | (g << 8) | r


def reaper_project(session: Session, stems_info: list[dict], midi_info: list[dict], seconds: float) -> str:
    """The text of a REAPER ``.rpp`` project referring to the session's files by relative path."""
    def q(text: str) -> str:
        return '"' + _one_line(text).replace('"', "'") + '"'

    lines = [
        f'<REAPER_PROJECT 0.1 "6.0/singvc-{__version__}" 0',
        f"  TEMPO {_fmt(session.tempo_bpm)} 4 4",
        f"  SAMPLERATE {session.sample_rate} 0 0",
        "  <NOTES 0 2",
        f"    |{_one_line(session.title)}: tempo {session.tempo_bpm:g} BPM"
        + (f", key {session.key.name}" if session.key else ""),
        "  >",
    ]
    entries = [(info, "WAVE") for info in stems_info] + [(info, "MIDI") for info in midi_info]
    for info, kind in entries:
        lines += [
            "  <TRACK",
            f"    NAME {q(info['track'])}",
            f"    PEAKCOL {_reaper_color(COLORS.get(info['role'], '#a0a0a0'))}",
            f"    MUTESOLO {1 if info['muted'] else 0} 0 0",
            f"    NCHAN {max(2, int(info.get('channels', 2)))}",
            "    <ITEM",
            "      POSITION 0",
            f"      LENGTH {_fmt(seconds)}",
            f"      NAME {q(info['file'])}",
            f"      <SOURCE {kind}",
            f"        FILE {q(info['file'])}",
            "      >",
            "    >",
            "  >",
        ]
    lines.append(">")
    return "\n".join(lines) + "\n"


def read_reaper_tracks(text: str) -> list[dict]:
    """Parse the track list of an ``.rpp`` written by :func:`reaper_project`: name, muted, source kind, file."""
    tracks: list[dict] = []
    current: dict | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line == "<TRACK" or line.startswith("<TRACK "):
            current = {"name": None, "muted": False, "source": None, "file": None}
            tracks.append(current)
        elif current is None:
            continue
        elif line.startswith("NAME ") and current["name"] is None:
            current["name"] = line[5:].strip().strip('"')
        elif line.startswith("MUTESOLO "):
            current["muted"] = line.split()[1] == "1"
        elif line.startswith("<SOURCE "):
            current["source"] = line.split()[1]
        elif line.startswith("FILE ") and current["file"] is None:
            current["file"] = line[5:].strip().strip('"')
    return tracks


# -- which tracks ------------------------------------------------------------------------------------------
def cover_session(
    result: "CoverResult",
    song: np.ndarray | None = None,
    title: str = "singvc cover",
    name: str = "session",
    tempo_bpm: float | None = None,
    key: Key | None = None,
    midi: bool = True,
) -> Session:
    """The session of a cover: converted vocal, original vocal (muted), the original lead and
    backing vocals (muted, when the vocal was split), Demucs stems, instrumental, mix, and the
    melodies of both vocals.

    Tempo and key are measured on ``song`` (the input mix; by default original vocal +
    instrumental) unless given. When Demucs stems are present they play with the converted vocal
    and the instrumental is muted (it is their sum plus Demucs' residual); the mix is muted (a
    reference). After a non-octave shift the manifest also gives the vocal's new key and, when
    the instrumental moved too, the song's.
    """
    rate = result.sample_rate
    if song is None:
        song = result.song if getattr(result, "song", None) is not None else result.vocals_original + result.instrumental
    tempo, found = analyse(song, rate) if tempo_bpm is None or key is None else (tempo_bpm, key)
    tempo_bpm = tempo if tempo_bpm is None else tempo_bpm
    key = found if key is None else key
    separated = dict(getattr(result, "separated", {}) or {})
    stems = [
        Stem("vocals_converted", "Vocal (converted)", result.vocals_converted),
        Stem("vocals_original", "Vocal (original)", result.vocals_original, muted=True,
             source="vocals" if separated else None),
    ]
    extra = dict(getattr(result, "extra_stems", {}) or {})
    for role, name in (("vocals_lead", "Vocal lead (original)"), ("vocals_backing", "Vocal backing (original)")):
        if f"{role}.wav" in extra:
            stems.append(Stem(role, name, extra[f"{role}.wav"], muted=True))
    for source in sorted(separated, key=_source_order):
        if source != "vocals":
            stems.append(Stem(source, source.capitalize(), separated[source], source=source))
    stems.append(Stem("instrumental", "Instrumental", result.instrumental, muted=bool(separated)))
    stems.append(Stem("mix", "Mix (cover)", result.mix, muted=True, headroom=False))
    settings = result.report.get("settings", {})
    # the vocal actually moved by the plan's shift, unless the converter passed it through
    shift = float(result.vocal_shift)
    melodies = []
    if midi:
        melodies = [
            MelodyPart("melody_converted", "Melody (converted)",
                       melody_from_track(result.pitch.shifted(shift), result.vocals_converted, rate)),
            MelodyPart("melody_original", "Melody (original)",
                       melody_from_track(result.pitch, result.vocals_original, rate), muted=True),
        ]
    shifted_instrumental = bool(settings.get("shift_instrumental")) and shift % 12 != 0
    keys = {
        "song": key.describe(),
        "shift_semitones": shift,
        "vocal_after_shift": transpose_key(key, shift).describe(),
        "song_after_shift": transpose_key(key, shift).describe() if shifted_instrumental else key.describe(),
        "keeps_key": shift % 12 == 0,
    }
    return Session(stems=stems, sample_rate=rate, tempo_bpm=tempo_bpm, key=key, melodies=melodies, title=title,
                   name=name, extra={"keys": keys, "converter": result.report.get("converter")})


def stems_session(
    song: np.ndarray,
    sample_rate: int,
    separated: dict[str, np.ndarray],
    pitch: "PitchTrack | None" = None,
    title: str = "singvc stems",
    name: str = "session",
    instrumental_path: str | os.PathLike | None = None,
) -> Session:
    """The session of a separation: every Demucs stem, the instrumental (muted), the song (muted),
    and the vocal's melody when its pitch track is given. ``instrumental_path``: a ``.npy`` file
    to hold the instrumental (a :class:`~singvc.audio.DiskAudio`) instead of memory."""
    song = as_audio(song, "song")
    tempo, key = analyse(song, sample_rate)
    vocals = separated["vocals"]
    stems = [Stem("vocals", "Vocals", vocals, source="vocals")]
    for source in sorted(separated, key=_source_order):
        if source != "vocals":
            stems.append(Stem(source, source.capitalize(), separated[source], source=source))
    stems.append(Stem("instrumental", "Instrumental", difference(song, vocals, instrumental_path), muted=True))
    stems.append(Stem("mix", "Song", song, muted=True))
    melodies = []
    if pitch is not None:
        melodies.append(MelodyPart("melody_original", "Melody (vocals)", melody_from_track(pitch, vocals, sample_rate)))
    return Session(stems=stems, sample_rate=sample_rate, tempo_bpm=tempo, key=key, melodies=melodies, title=title,
                   name=name)


def _source_order(source: str) -> tuple[int, str]:
    order = ("drums", "bass", "other", "guitar", "piano", "vocals")
    return (order.index(source) if source in order else len(order), source)
