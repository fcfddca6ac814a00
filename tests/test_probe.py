"""Every case of benchmarks/probe.py (faults and hostile input through the real command line, with
the exit code each must end with and what must be left on disk), run as tests."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "probe.py"
_spec = importlib.util.spec_from_file_location("singvc_probe", _PATH)
probe = importlib.util.module_from_spec(_spec)
sys.modules["singvc_probe"] = probe
_spec.loader.exec_module(probe)


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe_fixtures")
    return probe.Fixtures(root)


@pytest.mark.parametrize("case", probe.CASES, ids=[c.name for c in probe.CASES])
def test_probe_case(case, fixtures, tmp_path):
    result = probe.run_case(case, fixtures, tmp_path / "case")
    assert result.got == case.expect and not result.problems, (
        f"exit {result.got} (want {case.expect}); problems: {result.problems}")
