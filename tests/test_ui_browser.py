"""The web app in a real browser: Debian's chromium driven headless by Playwright.

Opens the page, uploads a vocal and voice clips from ../shared/data, runs a cover of the vocal
(no separation, the ``fast`` preset), waits for it, checks that the four players hold audio of
the input's length, that the range plot is shown and that the DAW session zip downloads and
opens; a second run with another voice reuses the pitch cache; a third job is cancelled midway
and nothing of it is left. Every request the page makes must go to the app itself (offline: no
CDN, no analytics). Screenshots of each tab go to ``test-output/ui/`` (or $SINGVC_UI_SHOTS).

Skipped, with the reason, only when chromium, Playwright or Gradio is not installed
(``.ci/run`` installs chromium; ``pip install -e '.[test]'`` the rest) or ../shared/data is absent.
"""
from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import pytest
import soundfile as sf

from singvc.recipe import parse_recipe

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
SHOTS = Path(os.environ.get("SINGVC_UI_SHOTS", ROOT / "test-output" / "ui"))
HIDDEN = re.compile(r"\.(scratch|partial|old)-|\.part|^\.entry\.")

if CHROMIUM is None:
    pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
pytest.importorskip("gradio", reason="gradio is not installed (pip install -e '.[test]' or '.[ui]')")
if not (DATA / "vocals" / "jay_7s.flac").is_file():
    pytest.skip(f"{DATA} (the shared audio) is not here", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``singvc ui`` in a subprocess on a free port, with its own working folder, cache and home."""
    base = tmp_path_factory.mktemp("ui")
    port = free_port()
    env = {**os.environ, "SINGVC_HOME": str(base / "home"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "singvc", "ui", "--port", str(port), "--workdir", str(base / "wd"),
                             "--cache-dir", str(base / "cache")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    log: list[str] = []

    def read():
        for line in proc.stdout:
            log.append(line)
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    url = None
    deadline = time.monotonic() + 180
    while url is None and time.monotonic() < deadline and proc.poll() is None:
        try:
            match = re.search(r"singvc ui: (http://\S+)", lines.get(timeout=1))
        except queue.Empty:
            continue
        url = match and match.group(1)
    assert url, "the app did not start:\n" + "".join(log)
    assert urlparse(url).hostname == "127.0.0.1" and urlparse(url).port == port
    yield {"url": url, "port": port, "workdir": base / "wd", "cache": base / "cache", "log": log}
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def page(server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {SHOTS}")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1300, "height": 1000}, accept_downloads=True)
        pg = context.new_page()
        pg.requests = []
        pg.on("request", lambda r: pg.requests.append(r.url))
        pg.goto(server["url"])
        pg.wait_for_selector("#cover-run", timeout=90_000)
        yield pg
        browser.close()


def upload(page, component: str, path: Path) -> None:
    clear = page.locator(f"{component} button[aria-label='Clear']")
    if clear.count():  # replace the file it holds
        clear.first.click()
    with page.expect_file_chooser() as chooser:
        page.click(f"{component} button.upload-container")
    chooser.value.set_files(str(path))


def wait_status(page, element: str, timeout_s: float) -> str:
    page.wait_for_function(f"() => {{ const t = document.querySelector('{element} textarea'); "
                           "return t && t.value.length > 0; }", timeout=timeout_s * 1000)
    return page.input_value(f"{element} textarea")


def run_cover(page, voice: Path) -> str:
    page.evaluate("() => { document.querySelector('#cover-status textarea').value = ''; }")
    upload(page, "#cover-voice-clip", voice)
    page.click("#cover-run")
    page.wait_for_selector("#cover-progress .singvc-stage progress", timeout=60_000)
    return wait_status(page, "#cover-status", 240)


def decoded_seconds(page, element: str) -> float:
    """The length of the audio a player holds, decoded by the browser from the file it serves."""
    href = page.get_attribute(f"{element} a.download-link", "href")
    return page.evaluate("""async (href) => {
        const data = await (await fetch(href)).arrayBuffer();
        const audio = await new OfflineAudioContext(1, 1, 44100).decodeAudioData(data);
        return audio.duration; }""", href)


def leftovers(workdir: Path, cache: Path) -> list[str]:
    return [str(p) for folder in (workdir, cache) for p in folder.rglob("*") if HIDDEN.search(p.name)]


def test_cover_in_the_browser(server, page, tmp_path):
    vocal = DATA / "vocals" / "jay_7s.flac"
    seconds = sf.info(str(vocal)).duration
    page.click("#cover-input-mode label:has-text('vocal only')")
    upload(page, "#cover-song", vocal)
    page.click("#cover-preset input")
    page.get_by_role("option", name="fast", exact=True).click()
    page.screenshot(path=str(SHOTS / "cover-form.png"), full_page=True)

    status = run_cover(page, DATA / "voices" / "s1p1.flac")
    assert status.startswith("done: jobs/"), status
    job = server["workdir"] / status.removeprefix("done: ").strip().removesuffix("/out")
    page.wait_for_selector("#out-plot img", timeout=30_000)
    page.screenshot(path=str(SHOTS / "cover-result.png"), full_page=True)

    # the four players hold audio of the vocal's length
    for player in ("#out-mix", "#out-converted", "#out-original", "#out-instrumental"):
        page.wait_for_selector(f"{player} a.download-link", timeout=30_000)
        assert decoded_seconds(page, player) == pytest.approx(seconds, abs=0.01), player
        shown = page.inner_text(f"{player} time#duration")
        assert shown == f"{int(seconds) // 60}:{int(round(seconds)) % 60:02d}", (player, shown)
    # the range plot is shown (a decoded image, not a broken link)
    width = page.evaluate("() => document.querySelector('#out-plot img').naturalWidth")
    assert width >= 600
    assert "semitones" in page.inner_text("#out-summary")

    # the DAW session downloads as one zip that opens
    names = page.eval_on_selector_all("#out-files a.download-link", "links => links.map(a => a.download)")
    assert {"mix.wav", "vocals_converted.wav", "vocals_original.wav", "instrumental.wav", "plan.png"} <= set(names)
    zip_name = next(n for n in names if n.endswith("-session.zip"))
    with page.expect_download() as download:
        page.click(f"#out-files a.download-link[download='{zip_name}']")
    saved = tmp_path / zip_name
    download.value.save_as(saved)
    with zipfile.ZipFile(saved) as z:
        assert z.testzip() is None
        inside = z.namelist()
    assert any(n.endswith("session.json") for n in inside) and any(n.endswith(".dawproject") for n in inside)
    assert any(n.endswith(".rpp") for n in inside) and any(n.endswith(".mid") for n in inside)
    assert (job / "out" / "plan.png").is_file() and (job / "inputs" / "jay_7s.flac").is_file()

    # a second run with another voice reuses the pitch track from the cache
    status = run_cover(page, DATA / "voices" / "s2p1.flac")
    assert status.startswith("done: jobs/"), status
    assert "Reused from the cache: pitch" in page.inner_text("#out-summary")
    jobs = sorted(p.name for p in (server["workdir"] / "jobs").iterdir())
    assert len(jobs) == 2

    # a third job (a longer vocal) is cancelled midway: nothing of it is left
    upload(page, "#cover-song", DATA / "vocals" / "see_you_again_28s.flac")
    page.evaluate("() => { document.querySelector('#cover-status textarea').value = ''; }")
    upload(page, "#cover-voice-clip", DATA / "voices" / "s1p2.flac")
    page.click("#cover-run")
    # midway: once the vocal's pitch tracking or conversion has started
    page.wait_for_function("() => [...document.querySelectorAll('#cover-progress .singvc-stage')]"
                           ".some(s => ['pitch', 'convert'].includes(s.dataset.stage) "
                           "&& s.querySelector('progress').value > 0)", timeout=120_000)
    page.screenshot(path=str(SHOTS / "cover-running.png"), full_page=True)
    page.click("#cover-cancel")
    status = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = page.input_value("#cover-status textarea")
        if status.startswith("singvc: cancelled") or status.startswith("done"):
            break
        page.wait_for_timeout(250)
    assert status.startswith("singvc: cancelled"), status
    page.screenshot(path=str(SHOTS / "cover-cancelled.png"), full_page=True)
    assert sorted(p.name for p in (server["workdir"] / "jobs").iterdir()) == jobs
    assert leftovers(server["workdir"], server["cache"]) == []

    # a vocal feature shows the recipe it runs and offers it for download (singvc run re-runs it)
    page.get_by_role("tab", name="Vocal feature").click()
    page.click("#feature-input-mode label:has-text('vocal only')")
    upload(page, "#feature-song", vocal)
    page.click("#feature-show")
    page.wait_for_function("() => document.querySelector('#feature-recipe').innerText.includes('feature.sections')",
                           timeout=30_000)
    with page.expect_download() as download:
        page.click("#feature-recipe-file a.download-link")
    saved = tmp_path / "recipe.toml"
    download.value.save_as(saved)
    recipe = parse_recipe(saved.read_text(), str(saved))
    assert recipe.kind == "feature" and recipe.get("input.song") == "jay_7s.flac"
    assert recipe.settings().separation is False and recipe.get("preset") == "quality"

    # every tab, for the record
    for tab, name in (("Vocal feature", "feature"), ("Batch", "batch"), ("Voices", "voices"),
                      ("Models and cache", "models")):
        page.get_by_role("tab", name=tab).click()
        page.wait_for_timeout(500)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    page.get_by_role("tab", name="Cover").click()

    # offline: the page asked nothing of any host but the app
    hosts = {urlparse(u).netloc for u in page.requests if urlparse(u).scheme in ("http", "https", "ws", "wss")}
    assert hosts == {f"127.0.0.1:{server['port']}"}, hosts
    assert not [u for u in page.requests if urlparse(u).scheme not in ("http", "https", "ws", "wss", "data", "blob")]
