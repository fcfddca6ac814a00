"""The install check: versions of the torch stack, a real load test, one clear error when broken."""
from __future__ import annotations

import pytest

from singvc import doctor
from singvc.cli import main
from singvc.errors import InstallError


def test_stack_of_this_environment_loads_and_names_versions():
    report = doctor.check_stack()
    assert report.loads, report.problem
    assert report.versions["torch"] and report.versions["torchaudio"]
    assert report.verdict().startswith("ok") == report.tested


def _broken():
    raise OSError("Could not load this library: /x/torchaudio/lib/libtorchaudio.so")


def test_a_pair_that_does_not_load_is_reported_with_both_versions_and_the_fix():
    report = doctor.check_stack(load=_broken)
    assert not report.loads
    line = report.verdict()
    assert line.startswith("BROKEN")
    assert f"torchaudio {report.versions['torchaudio']}" in line and f"torch {report.versions['torch']}" in line
    assert "constraints.txt" in line and "\n" not in line


def test_an_untested_pair_that_loads_is_visible_but_not_fatal(monkeypatch):
    monkeypatch.setattr(doctor, "TESTED_PAIRS", (("0.0.1", "0.0.1"),))
    report = doctor.check_stack()
    assert report.loads and not report.tested
    assert report.verdict().startswith("works, untested")
    doctor.require_stack()  # does not raise


def test_release_drops_the_local_build_label():
    assert doctor.release("2.11.0+cu130") == "2.11.0"
    assert doctor.release(None) is None


def test_version_flag_prints_the_stack(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("singvc ")
    assert "torchaudio" in out and "torch stack: " in out


def test_doctor_exit_code_follows_the_stack(monkeypatch, capsys, tmp_path):
    assert main(["doctor", "--cache-dir", str(tmp_path)]) == 0
    assert "crepe full weights: ok" in capsys.readouterr().out
    monkeypatch.setattr(doctor, "_load_torchaudio", _broken)
    assert main(["doctor", "--cache-dir", str(tmp_path)]) == 3
    assert "BROKEN" in capsys.readouterr().out


def test_broken_stack_stops_a_cover_before_any_work(monkeypatch, capsys, tmp_path):
    broken = doctor.check_stack(load=_broken)
    monkeypatch.setattr(doctor, "_cached_check", lambda: broken)
    with pytest.raises(InstallError):
        doctor.require_stack()
    song = tmp_path / "song.wav"
    song.write_bytes(b"not read: the stack check comes first")
    out = tmp_path / "out"
    code = main(["cover", str(song), "--no-separation", "--target-range", "C3-C4", "-o", str(out), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    assert len(err) == 1 and "torch stack is broken" in err[0]
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["song.wav"]


def test_constraints_file_pins_the_first_tested_pair():
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "constraints.txt"
    if not path.is_file():
        pytest.skip("not a source checkout")
    pins = dict(line.split(";")[0].strip().split("==") for line in path.read_text().splitlines()
                if line.strip() and not line.startswith("#"))
    assert (pins["torch"], pins["torchaudio"]) == doctor.TESTED_PAIRS[0]
