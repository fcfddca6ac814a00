"""Outputs stay bit-identical to the record in docs/ (benchmarks/check_same_audio.py) for a few of
its jobs: a change that is not meant to touch the sound (a re-layout, a refactor) cannot slip an
audio change through. A change meant to change the sound records the jobs again
(``python benchmarks/check_same_audio.py --real --write docs/same-audio-DATE.json``) and says why."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import check_same_audio  # noqa: E402

RECORD = sorted((ROOT / "docs").glob("same-audio-*.json"))[-1]


def test_jobs_match_the_record():
    record = json.loads(RECORD.read_text())
    if record["versions"] != check_same_audio.versions():
        pytest.skip(f"{RECORD.name} was made with other package versions: not comparable")
    jobs = ["cover-dsp-daw", "cover-none", "feature"]
    results = check_same_audio.run_all(real=False, only=jobs)
    for name in jobs:
        assert results[name] == record["jobs"][name], f"{name}: outputs differ from {RECORD.name}"
