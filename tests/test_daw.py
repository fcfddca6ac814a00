"""DAW session export: melody MIDI, tempo and key, DAWproject and REAPER files, the session folder,
and `singvc cover --daw` / `singvc stems` end to end (tiny random Demucs, crepe tiny, synthetic audio)."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from singvc.analysis import Key, estimate_key, estimate_tempo, transpose_key
from singvc.cli import main
from singvc.midi import Melody, Note, melody_from_track, melody_to_midi, midi_pitch_at, seconds_to_ticks
from singvc.pitch import PitchTrack
from singvc.session import (MelodyPart, Session, Stem, read_reaper_tracks, write_session,
                            write_session_folder)

from conftest import harmonic_tone

#: the DAWproject XSDs, in the shared folder beside the repository (../shared/formats/dawproject)
SCHEMAS = Path(__file__).resolve().parents[2] / "shared" / "formats" / "dawproject"
RATE = 22050
HOP = 0.01


def track_from_midi(midi: np.ndarray, voiced: np.ndarray | None = None) -> PitchTrack:
    times = np.arange(len(midi)) * HOP
    return PitchTrack(times=times, f0=440.0 * 2 ** ((midi - 69) / 12), periodicity=np.ones(len(midi), np.float32),
                      voiced=np.ones(len(midi), bool) if voiced is None else voiced, hop=HOP, model="tiny")


def melody_line() -> tuple[np.ndarray, np.ndarray]:
    """A3 with vibrato (0-1 s), C4 scooped up from 1.5 semitones below over 150 ms (to 2 s), a rest,
    E4 (2.2-3 s)."""
    t = np.arange(0, 3, HOP)
    midi = np.where(t < 1, 57.0, np.where(t < 2, 60.0, 64.0))
    slide = (t >= 1) & (t < 1.15)
    midi[slide] = 58.5 + 1.5 * (t[slide] - 1) / 0.15
    midi += np.where(t < 1, 0.4 * np.sin(2 * np.pi * 5.5 * t), 0.0)  # ±40 cents vibrato on A3
    voiced = ~((t >= 2.0) & (t < 2.2))
    return midi, voiced


def roundtrip(midi_file: mido.MidiFile) -> mido.MidiFile:
    buf = io.BytesIO()
    midi_file.save(file=buf)
    buf.seek(0)
    return mido.MidiFile(file=buf)


def note_list(midi_file: mido.MidiFile) -> list[tuple[float, float, int, int]]:
    """(start s, end s, key, velocity) from a parsed file."""
    now, open_, out = 0.0, {}, []
    for msg in midi_file:
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            open_[msg.note] = (now, msg.velocity)
        elif msg.type in ("note_off", "note_on") and msg.note in open_:
            start, vel = open_.pop(msg.note)
            out.append((start, now, msg.note, vel))
    return sorted(out)


# -- MIDI ------------------------------------------------------------------------------------------------
def test_midi_file_ppq_tempo_rpn_notes_and_bends():
    midi, voiced = melody_line()
    melody = melody_from_track(track_from_midi(midi, voiced))
    parsed = roundtrip(melody_to_midi(melody, 123.4, name="lead"))
    assert parsed.ticks_per_beat == 480 and parsed.type == 1
    tempos = [m for m in parsed.tracks[0] if m.type == "set_tempo"]
    assert len(tempos) == 1 and tempos[0].tempo == mido.bpm2tempo(123.4)
    ccs = [(m.control, m.value) for m in parsed.tracks[1] if m.type == "control_change"]
    assert ccs[:4] == [(101, 0), (100, 0), (6, 2), (38, 0)]  # RPN 0: bend range ±2 semitones
    notes = note_list(parsed)
    assert [n[2] for n in notes] == [57, 60, 64]
    assert [n[0] for n in notes] == pytest.approx([0.0, 1.0, 2.2], abs=0.015)
    assert notes[-1][1] == pytest.approx(3.0, abs=0.015)
    played = midi_pitch_at(parsed, np.arange(len(midi)) * HOP + 0.002)
    inside = voiced & ~np.isnan(played)
    assert inside.sum() >= 0.97 * voiced.sum()
    assert np.max(np.abs(played[inside] - midi[inside])) < 0.05  # vibrato and slide carried by bends
    assert np.all(np.isnan(played[~voiced]))


def test_notes_at_least_80_ms_and_blips_dropped():
    t = np.arange(0, 1.5, HOP)
    midi = np.full(len(t), 62.0)
    midi[(t >= 0.5) & (t < 0.55)] = 67.0  # a 50 ms excursion: not a note of its own
    voiced = np.ones(len(t), bool)
    voiced[(t >= 1.0) & (t < 1.04)] = False  # a 40 ms gap: a new onset
    voiced[(t >= 1.04) & (t < 1.1)] = True
    voiced[(t >= 1.1) & (t < 1.2)] = False  # then a 60 ms voiced blip alone: dropped
    voiced[t >= 1.2] = True
    melody = melody_from_track(track_from_midi(midi, voiced))
    assert all(n.end - n.start >= 0.08 - 1e-9 for n in melody.notes)
    assert [n.key for n in melody.notes] == [62, 62]
    assert melody.notes[1].start == pytest.approx(1.2, abs=0.011)


def test_held_pitch_change_starts_a_note_but_vibrato_does_not():
    t = np.arange(0, 2, HOP)
    midi = np.where(t < 1, 60.0, 62.0) + 0.45 * np.sin(2 * np.pi * 6 * t)  # ±45 cents vibrato throughout
    melody = melody_from_track(track_from_midi(midi))
    assert [n.key for n in melody.notes] == [60, 62]
    assert melody.notes[1].start == pytest.approx(1.0, abs=0.06)


def test_velocity_follows_loudness():
    seconds = 2.0
    f0 = np.where(np.arange(int(seconds * RATE)) < RATE, 220.0, 330.0)
    audio = harmonic_tone(f0, seconds, RATE, level=0.3)
    audio[RATE:] *= 0.1  # second note 20 dB softer
    t = np.arange(0, seconds, HOP)
    melody = melody_from_track(track_from_midi(np.where(t < 1, 57.0, 64.0)), audio[None], RATE)
    assert [n.key for n in melody.notes] == [57, 64]
    assert melody.notes[0].velocity == 127
    assert 60 <= melody.notes[1].velocity <= 80  # -20 dB -> 127 - 20 * 107 / 40 = 73.5


def test_bend_range_is_configurable_and_clipped():
    t = np.arange(0, 1, HOP)
    melody = melody_from_track(track_from_midi(60 + 0.8 * np.sin(2 * np.pi * 5 * t)), bend_range=0.5)
    assert np.max(np.abs(melody.bend_semitones)) <= 0.5
    parsed = roundtrip(melody_to_midi(melody, 100))
    ccs = [(m.control, m.value) for m in parsed.tracks[1] if m.type == "control_change"]
    assert ccs[:4] == [(101, 0), (100, 0), (6, 0), (38, 50)]


def test_seconds_to_ticks_uses_the_written_tempo():
    assert seconds_to_ticks(1.0, 120.0) == 960
    assert seconds_to_ticks(0.5, 60.0) == 240
    melody = Melody(notes=[Note(1.0, 1.5, 60)])
    parsed = roundtrip(melody_to_midi(melody, 97.3))
    assert note_list(parsed)[0][:2] == pytest.approx((1.0, 1.5), abs=0.002)


def test_melody_from_crepe_on_a_synthetic_vocal(tiny_crepe):
    from singvc.pitch import track_pitch

    keys = [57, 59, 60, 64]
    f0 = np.concatenate([np.full(int(0.5 * RATE), 440 * 2 ** ((k - 69) / 12)) for k in keys])
    audio = harmonic_tone(f0, 2.0, RATE)[None]
    melody = melody_from_track(track_pitch(audio, RATE, tiny_crepe), audio, RATE)
    assert [n.key for n in melody.notes] == keys


# -- tempo and key -----------------------------------------------------------------------------------------
def chord_progression(roots_and_thirds: list[tuple[int, int]], seconds_each: float = 1.0) -> np.ndarray:
    """Triads (root MIDI note, third in semitones) with a bass note, float32 [1, samples]."""
    parts = []
    for root, third in roots_and_thirds:
        tones = [root - 12, root, root + third, root + 7]
        parts.append(sum(harmonic_tone(440 * 2 ** ((k - 69) / 12), seconds_each, RATE, n_harmonics=4, level=0.1)
                         for k in tones))
    return np.concatenate(parts)[None].astype(np.float32)


def test_key_of_major_and_minor_progressions():
    c_major = chord_progression([(60, 4), (65, 4), (67, 4), (60, 4)])  # C F G C
    a_minor = chord_progression([(57, 3), (62, 3), (64, 4), (57, 3)])  # Am Dm E Am
    assert estimate_key(c_major, RATE).name == "C major"
    assert estimate_key(a_minor, RATE).name == "A minor"
    eb_major = chord_progression([(63, 4), (68, 4), (70, 4), (63, 4)])
    assert estimate_key(eb_major, RATE).name == "Eb major"


def test_transpose_key():
    a_minor = Key(9, "minor")
    assert transpose_key(a_minor, 3).name == "C minor"
    assert transpose_key(a_minor, -12).name == "A minor"
    assert transpose_key(Key(0, "major"), -1).name == "B major"
    assert transpose_key(Key(6, "major"), 0).name == "F# major"


@pytest.mark.parametrize("bpm", [100.0, 128.0])
def test_tempo_of_a_click_track(bpm):
    n = int(10 * RATE)
    clicks = np.zeros(n, np.float32)
    click = (np.sin(2 * np.pi * 1000 * np.arange(400) / RATE) * np.exp(-np.arange(400) / 80)).astype(np.float32)
    for start in np.arange(0, 10, 60 / bpm):
        i = int(start * RATE)
        clicks[i:i + 400] += click[: n - i]
    assert estimate_tempo(clicks[None], RATE) == pytest.approx(bpm, rel=0.03)


def test_tempo_of_silence_is_the_default():
    assert estimate_tempo(np.zeros((1, RATE * 2), np.float32), RATE) == 120.0


# -- session files -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def schemas():
    xmlschema = pytest.importorskip("xmlschema")
    if not (SCHEMAS / "Project.xsd").is_file():
        pytest.skip(f"DAWproject schemas not found in {SCHEMAS}")
    return (xmlschema.XMLSchema(str(SCHEMAS / "Project.xsd")), xmlschema.XMLSchema(str(SCHEMAS / "MetaData.xsd")))


def small_session() -> Session:
    rng = np.random.default_rng(0)
    n = RATE * 2
    midi, voiced = melody_line()
    melody = melody_from_track(track_from_midi(midi[:200], voiced[:200]))
    return Session(
        stems=[Stem("vocals_converted", "Vocal (converted)", 0.1 * rng.standard_normal((2, n)).astype(np.float32)),
               Stem("vocals_original", "Vocal (original)", 0.1 * rng.standard_normal((1, n)).astype(np.float32),
                    muted=True),
               Stem("drums", "Drums", 0.1 * rng.standard_normal((2, n - 100)).astype(np.float32), source="drums")],
        sample_rate=RATE, tempo_bpm=96.5, key=Key(9, "minor"),
        melodies=[MelodyPart("melody_converted", "Melody (converted)", melody)], title="test", name="my song")


def check_session_folder(folder: Path, schemas) -> dict:
    """Everything a session folder promises; returns its manifest."""
    manifest = json.loads((folder / "session.json").read_text())
    infos = [sf.info(str(folder / s["file"])) for s in manifest["stems"]]
    assert {(i.samplerate, i.frames) for i in infos} == {(manifest["sample_rate"], manifest["length_samples"])}
    assert {i.subtype for i in infos} == {"PCM_24"} and manifest["bit_depth"] == 24
    files = [s["file"] for s in manifest["stems"]] + [m["file"] for m in manifest["midi"]]
    assert files == sorted(files) and all(f[:2].isdigit() and f[2] == "_" for f in files)
    for m in manifest["midi"]:
        parsed = mido.MidiFile(str(folder / m["file"]))
        assert parsed.ticks_per_beat == 480
        assert [x.tempo for x in parsed.tracks[0] if x.type == "set_tempo"] == [mido.bpm2tempo(manifest["tempo_bpm"])]
        assert len(note_list(parsed)) == m["notes"]
    with zipfile.ZipFile(folder / manifest["dawproject"]) as z:
        names = set(z.namelist())
        assert {"project.xml", "metadata.xml"} <= names
        assert {f"audio/{s['file']}" for s in manifest["stems"]} <= names
        project, metadata = z.read("project.xml").decode(), z.read("metadata.xml").decode()
    schemas[0].validate(project)
    schemas[1].validate(metadata)
    from xml.etree import ElementTree as ET

    root = ET.fromstring(project)
    assert float(root.find("Transport/Tempo").get("value")) == pytest.approx(manifest["tempo_bpm"], abs=1e-3)
    tracks = [t for t in root.find("Structure") if t.get("name") != "Master"]
    assert [t.get("name") for t in tracks] == [s["track"] for s in manifest["stems"]] + [m["track"] for m in manifest["midi"]]
    assert [t.find("Channel/Mute").get("value") == "true" for t in tracks] == \
        [s["muted"] for s in manifest["stems"]] + [m["muted"] for m in manifest["midi"]]
    lanes = root.findall("Arrangement/Lanes/Lanes")
    assert [lane.get("track") for lane in lanes] == [t.get("id") for t in tracks]
    files_in_project = [f.get("path") for f in root.iter("File")]
    assert files_in_project == [f"audio/{s['file']}" for s in manifest["stems"]]
    assert sum(len(n.findall("Note")) for n in root.iter("Notes")) == sum(m["notes"] for m in manifest["midi"])
    rpp = read_reaper_tracks((folder / manifest["reaper"]).read_text())
    assert [(t["name"], t["muted"], t["file"]) for t in rpp] == \
        [(s["track"], s["muted"], s["file"]) for s in manifest["stems"]] + \
        [(m["track"], m["muted"], m["file"]) for m in manifest["midi"]]
    assert [t["source"] for t in rpp] == ["WAVE"] * len(manifest["stems"]) + ["MIDI"] * len(manifest["midi"])
    assert all((folder / t["file"]).is_file() for t in rpp)
    text = (folder / manifest["reaper"]).read_text()
    assert text.startswith("<REAPER_PROJECT") and f"TEMPO {manifest['tempo_bpm']:g} 4 4" in text
    return manifest


def test_session_folder_files_validate(tmp_path, schemas):
    manifest = write_session_folder(tmp_path / "s", small_session())
    check_session_folder(tmp_path / "s", schemas)
    assert manifest["dawproject"] == "my_song.dawproject" and manifest["reaper"] == "my_song.rpp"
    assert [s["file"] for s in manifest["stems"]] == ["01_vocals_converted.wav", "02_vocals_original.wav",
                                                       "03_drums.wav"]
    assert manifest["midi"][0]["file"] == "04_melody_converted.mid"
    assert manifest["key"]["name"] == "A minor" and manifest["tempo_bpm"] == 96.5
    assert all(isinstance(s["loudness_lufs"], float) for s in manifest["stems"])
    assert [s["muted"] for s in manifest["stems"]] == [False, True, False]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_session_rewrite_replaces_folder(tmp_path):
    write_session_folder(tmp_path / "s", small_session())
    session = small_session()
    session.melodies = []
    write_session_folder(tmp_path / "s", session)
    assert not list((tmp_path / "s").glob("*.mid"))


def test_session_bit_depth_16(tmp_path):
    manifest = write_session(tmp_path, small_session(), bit_depth="16")
    assert sf.info(str(tmp_path / manifest["stems"][0]["file"])).subtype == "PCM_16"
    assert manifest["bit_depth"] == 16


# -- end to end through the CLI ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_files(tmp_path_factory, tiny_separator_repo):
    from conftest import synth_song

    root = tmp_path_factory.mktemp("daw")
    song = root / "song.wav"
    sf.write(str(song), synth_song(seconds=2.0).T, 44100, subtype="FLOAT")
    return {"root": root, "song": song,
            "args": ["--separator-model", "tiny", "--separator-repo", str(tiny_separator_repo), "--pitch-model", "tiny",
                     "--cache-dir", str(root / "cache"), "--quiet"]}


def test_cover_daw_end_to_end(cli_files, tmp_path, schemas):
    out = tmp_path / "out"
    rc = main(["cover", str(cli_files["song"]), "--transpose", "3", "--daw", "-o", str(out), *cli_files["args"]])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert "session" in report["outputs"] and report["session"]["folder"] == "session"
    manifest = check_session_folder(out / "session", schemas)
    roles = [s["role"] for s in manifest["stems"]]
    assert roles == ["vocals_converted", "vocals_original", "drums", "bass", "other", "instrumental", "mix"]
    assert [s["muted"] for s in manifest["stems"]] == [False, True, False, False, False, True, True]
    assert [m["role"] for m in manifest["midi"]] == ["melody_converted", "melody_original"]
    keys = manifest["keys"]
    assert keys["shift_semitones"] == 3 and keys["keeps_key"] is False
    assert keys["vocal_after_shift"]["tonic"] == (keys["song"]["tonic"] + 3) % 12
    assert keys["song_after_shift"] == keys["song"]  # the instrumental did not move
    song, _ = sf.read(str(cli_files["song"]), always_2d=True)
    assert manifest["length_samples"] == song.shape[0] and manifest["sample_rate"] == 44100
    # the session's stems are the cover's outputs
    for name, file in (("vocals_converted.wav", "01_vocals_converted.wav"), ("mix.wav", "07_mix.wav")):
        a, _ = sf.read(str(out / name))
        b, _ = sf.read(str(out / "session" / file))
        assert np.array_equal(a, b)
    # converted melody is the original's, 3 semitones up
    orig = note_list(mido.MidiFile(str(out / "session" / "09_melody_original.mid")))
    conv = note_list(mido.MidiFile(str(out / "session" / "08_melody_converted.mid")))
    assert [n[2] + 3 for n in orig] == [n[2] for n in conv]
    # a second run with the DAW session replaces it and hits the cache (all stems cached)
    assert main(["cover", str(cli_files["song"]), "--transpose", "3", "--converter", "none", "--daw", "-o", str(out),
                 *cli_files["args"]]) == 0
    assert json.loads((out / "report.json").read_text())["cache_hits"]["separation"] is True
    keys = json.loads((out / "session" / "session.json").read_text())["keys"]
    assert keys["shift_semitones"] == 0 and keys["vocal_after_shift"] == keys["song"]  # converter none: no shift
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_stems_end_to_end(cli_files, tmp_path, schemas):
    out = tmp_path / "stems"
    assert main(["stems", str(cli_files["song"]), "-o", str(out), *cli_files["args"]]) == 0
    manifest = check_session_folder(out, schemas)
    assert [s["role"] for s in manifest["stems"]] == ["vocals", "drums", "bass", "other", "instrumental", "mix"]
    assert [s["demucs_source"] for s in manifest["stems"][:4]] == ["vocals", "drums", "bass", "other"]
    assert [m["role"] for m in manifest["midi"]] == ["melody_original"]
    vocals, _ = sf.read(str(out / "01_vocals.wav"))
    inst, _ = sf.read(str(out / "05_instrumental.wav"))
    song, _ = sf.read(str(cli_files["song"]))
    assert np.max(np.abs(vocals + inst - song)) < 1e-4  # null test, within 24-bit rounding
    out2 = tmp_path / "stems2"
    assert main(["stems", str(cli_files["song"]), "-o", str(out2), "--no-midi", *cli_files["args"]]) == 0
    assert json.loads((out2 / "session.json").read_text())["midi"] == []


def test_stems_missing_song_is_a_user_error(cli_files, tmp_path, capsys):
    assert main(["stems", str(tmp_path / "nope.wav"), "-o", str(tmp_path / "x"), *cli_files["args"]]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
