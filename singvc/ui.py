"""``singvc ui``: the local web app (Gradio) on the same engine as the command line.

Two layers:

- :class:`App` and the functions around it are plain Python, tested without a browser: the app's
  working folder (:class:`Workspace`: one folder per job, uploads copied in under sanitised names
  and size-checked, nothing read or written outside it except the voice profiles folder and the
  results cache the CLI shares), one job at a time (:meth:`App.run_job`: a lock; a cancel flag
  that every audio block checks, :func:`~singvc.runfolders.request_cancel`; a cancelled or failed
  job's folder removed whole; errors as the CLI's one line, :func:`~singvc.errors.error_line`),
  the cover, vocal feature (through a recipe the user can download and re-run with
  ``singvc run``), batch and voice jobs, model and cache views.
- :func:`build_ui` lays the controls out with Gradio (imported only there and in :func:`serve`):
  every setting's control, range, unit, label and help come from
  :data:`singvc.settings.SCHEMA` and the converter registry, as the CLI's flags do.

Offline by construction: analytics off, a theme of system fonts (no font or script from a CDN),
no share link unless asked, served on 127.0.0.1 by default.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import threading
import time
import unicodedata
import uuid
import zipfile
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any, Callable, Iterator

from . import weights
from .cache import KINDS, Cache
from .config import list_presets, preset_layer
from .converters import CONVERTERS
from .cover import Singvc
from .engine import load_voice
from .errors import InstallError, SingvcError, UserInputError, error_line
from .jobs import cover_file
from .recipe import AUDIO_SUFFIXES, Recipe, load_recipe, parse_recipe, run_batch, run_recipe
from .run import atomic_write, write_text
from .runfolders import Cancelled, clear_cancel, request_cancel
from .settings import SCHEMA, CoverSettings, Layer, resolve
from .voice import analyse_voice, check_name, list_profiles, load_profile, profiles_dir, reference_path

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
#: largest upload accepted, in MB (a 10-minute 24-bit stereo WAV at 48 kHz is about 170 MB)
MAX_UPLOAD_MB = 500
#: the shipped presets, by name (the app never opens a preset path typed by a user)
PRESETS = tuple(list_presets())
#: the cover settings the Cover tab shows up front (the rest fold away under "Advanced settings")
MAIN_SETTINGS = ("converter", "plan_mode", "transpose", "target_range", "strength")
#: settings no control offers: the input mode sets ``separation``; a folder path is never typed in
HIDDEN_SETTINGS = ("separation", "separator_repo", "preset")
ADVANCED_SETTINGS = tuple(n for n, s in SCHEMA.items()
                          if s.scope == "cover" and n not in MAIN_SETTINGS and n not in HIDDEN_SETTINGS)
#: the key plan: the planner's modes (from the schema) or a forced shift or range
PLAN_CHOICES = (*SCHEMA["plan_mode"].choices, "transpose", "target range")
INPUT_MODES = ("song", "vocal + instrumental", "vocal only")
VOICE_MODES = ("clip", "saved voice", "none")
#: what the progress bars show, by the engine's callback stage
STAGE_LABELS = {"voice": "Measuring the target voice", "separation": "Separating the vocal",
                "pitch": "Tracking the pitch", "split": "Finding backing vocals", "dereverb": "Removing the room",
                "convert": "Converting the voice", "finish": "Mixing and writing"}
SECTION_COLUMNS = ("by", "range", "voice", "layer", "level_db", "pan", "original_level_db", "original_pan")


# -- the working folder ---------------------------------------------------------------------------
def default_workdir() -> Path:
    """``$SINGVC_HOME/ui``, else ``~/.local/share/singvc/ui`` (beside the voice profiles folder)."""
    return profiles_dir().parent / "ui"


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(name: str, default: str = "file") -> str:
    """A file name made from an upload's name: its last path part only, accents dropped, every
    character but letters, digits, ``_ . -`` replaced by ``_``, no leading dot or dash, at most
    80 characters before a suffix of at most 10; ``default`` when nothing is left."""
    base = re.split(r"[\\/]", str(name or ""))[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    suffix = re.sub(r"[^A-Za-z0-9]", "", suffix)[:10].lower()
    stem = _UNSAFE.sub("_", stem).strip("._- ")[:80].strip("._- ") or default
    return f"{stem}.{suffix}" if suffix else stem


def folder_bytes(folder: Path) -> int:
    total = 0
    for path in Path(folder).rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            continue
    return total


class Workspace:
    """The app's working folder: ``jobs/`` (one folder per job), ``batches/`` (one per batch
    name, kept so a batch can resume), ``recipes/`` (recipes offered for download) and
    ``gradio/`` (where Gradio keeps uploads and the files it serves).

    Args:
        root: the folder (created).
        max_upload_bytes: the largest upload :meth:`take` accepts.
    """

    def __init__(self, root: str | os.PathLike, max_upload_bytes: int = MAX_UPLOAD_MB * 1_000_000) -> None:
        self.root = Path(os.path.abspath(root))
        self.max_upload_bytes = int(max_upload_bytes)
        self.jobs = self.root / "jobs"
        self.batches = self.root / "batches"
        self.recipes = self.root / "recipes"
        self.uploads = self.root / "gradio"
        try:
            for folder in (self.jobs, self.batches, self.recipes, self.uploads):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserInputError(f"cannot use {self.root} as the app's working folder: {exc.strerror}") from None

    def new_job(self, kind: str) -> Path:
        """A new empty job folder ``jobs/YYYYmmdd-HHMMSS-KIND-xxxxxx``."""
        folder = self.jobs / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe_name(kind)}-{uuid.uuid4().hex[:6]}"
        folder.mkdir()
        return folder

    def take(self, upload: str | os.PathLike, folder: Path, what: str = "upload",
             taken: set[str] | None = None) -> Path:
        """Copy an uploaded file into ``folder`` under a sanitised name; returns the copy.

        Only files inside the uploads folder (where Gradio writes them) are taken: a path from
        anywhere else is refused, so no path a user typed is ever opened. Files larger than the
        limit are refused; ``taken`` (names already used in ``folder``) keeps two uploads of the
        same name apart."""
        src = Path(os.path.realpath(upload))
        if not src.is_relative_to(os.path.realpath(self.uploads)) or not src.is_file():
            raise UserInputError(f"{what}: not a file uploaded to this app")
        size = src.stat().st_size
        if size > self.max_upload_bytes:
            raise UserInputError(f"{what} {safe_name(src.name)} is {size / 1e6:.0f} MB; the app accepts "
                                 f"{self.max_upload_bytes / 1e6:.0f} MB at most")
        name = safe_name(src.name, default=safe_name(what))
        taken = taken if taken is not None else set()
        if name in taken:
            name = f"{safe_name(what)}-{name}"
        taken.add(name)
        dest = folder / name
        with atomic_write(dest) as tmp:
            shutil.copyfile(src, tmp)
        return dest

    def remove(self, folder: Path) -> None:
        """Remove a job folder (only ever one inside this workspace)."""
        folder = Path(folder)
        if folder.resolve().is_relative_to(self.root.resolve()) and folder.resolve() != self.root.resolve():
            shutil.rmtree(folder, ignore_errors=True)

    def finished_jobs(self) -> list[Path]:
        return sorted(p for p in self.jobs.iterdir() if p.is_dir())


# -- progress --------------------------------------------------------------------------------------
class Progress:
    """Per-stage progress of the running job, fed by the engine's callback
    (``{"stage", "seconds_done", "seconds_total"}``); read by the page every half second."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset(())

    def reset(self, stages: tuple[str, ...]) -> None:
        with self._lock:
            self.stages: dict[str, float] = {s: 0.0 for s in stages}
            self.note = ""
            self.started = time.monotonic()
            self.alias: dict[str, str] = {}

    def __call__(self, event: dict) -> None:
        stage = str(event.get("stage"))
        stage = self.alias.get(stage, stage)
        total = float(event.get("seconds_total") or 0.0)
        done = float(event.get("seconds_done") or 0.0)
        with self._lock:
            if stage not in self.stages:
                self.stages[stage] = 0.0
            self.stages[stage] = min(1.0, done / total) if total > 0 else 1.0
            for earlier in list(self.stages)[:list(self.stages).index(stage)]:
                self.stages[earlier] = 1.0  # a stage that reported nothing (cache hit) is done

    def finish(self, stage: str) -> None:
        with self._lock:
            self.stages[stage] = 1.0

    def snapshot(self) -> tuple[dict[str, float], float, str]:
        with self._lock:
            return dict(self.stages), time.monotonic() - self.started, self.note


def progress_html(progress: Progress, state: str = "running") -> str:
    """The progress bars of the running job (one per stage) as HTML."""
    stages, seconds, note = progress.snapshot()
    rows = []
    for stage, fraction in stages.items():
        label = STAGE_LABELS.get(stage, stage)
        rows.append(f'<div class="singvc-stage" data-stage="{escape(stage)}"><span class="singvc-stage-label">'
                    f'{escape(label)}</span><progress max="100" value="{fraction * 100:.0f}"></progress>'
                    f'<span class="singvc-stage-pct">{fraction * 100:.0f}%</span></div>')
    head = f'<div class="singvc-progress" data-state="{escape(state)}"><div>{escape(state)} ({seconds:.0f} s)'
    return head + (f" - {escape(note)}" if note else "") + "</div>" + "".join(rows) + "</div>"


# -- results -----------------------------------------------------------------------------------------
@dataclass
class JobResult:
    """What a job of the app left: ``status`` ``done``, ``cancelled`` or ``failed``; ``message``
    one line (the CLI's error line when failed); ``files`` by role (paths inside ``folder``)."""

    status: str
    message: str
    folder: Path | None = None
    report: dict | None = None
    files: dict[str, Path] = field(default_factory=dict)
    rows: list[list] = field(default_factory=list)


def zip_folder(folder: Path, target: Path, root_name: str) -> Path:
    """Zip every file under ``folder`` into ``target`` (atomically), under ``root_name/``."""
    with atomic_write(target, ".zip") as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for path in sorted(Path(folder).rglob("*")):
                if path.is_file():
                    z.write(path, f"{root_name}/{path.relative_to(folder).as_posix()}")
    return target


def cover_summary(report: dict) -> str:
    """A few lines (Markdown) on a finished cover: the shift in semitones and notes, time, cache hits, warnings."""
    plan = report.get("plan") or {}
    lines = [f"**Shift {plan.get('semitones', 0):+g} semitones** ({plan.get('mode', '')})"]
    if plan.get("source"):
        lines[0] += (f": the vocal's middle note {plan['source']['median']['note']} -> "
                     f"{plan['shifted_source_median']['note']}")
    if plan.get("target"):
        t = plan["target"]
        lines.append(f"Target tessitura {t['p10']['note']}-{t['p90']['note']}; notes outside it: "
                     f"{plan['out_of_range_share_before']:.0%} before, {plan['out_of_range_share_after']:.0%} after")
    hits = report.get("cache_hits") or {}
    if hits:
        lines.append("Reused from the cache: " + (", ".join(k for k, v in hits.items() if v) or "nothing (first run)"))
    seconds = (report.get("seconds") or {}).get("total")
    if seconds is not None:
        lines.append(f"Done in {seconds:.1f} s")
    for w in report.get("warnings") or []:
        lines.append(f"Warning: {w}")
    return "\n\n".join(lines)


# -- settings from the controls -------------------------------------------------------------------
def control_values(names: tuple[str, ...], values: tuple) -> dict[str, Any]:
    """The controls' values as settings: empty text is unset, numbers in the setting's type."""
    out: dict[str, Any] = {}
    for name, value in zip(names, values):
        s = SCHEMA[name]
        if isinstance(value, str) and not value.strip():
            value = None
        elif s.kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        elif s.kind is str and value is not None:
            value = str(value).strip()
        out[name] = value
    return out


def plan_values(plan: str, transpose: float | None, target_range: str | None) -> dict[str, Any]:
    """The key-plan control as settings: a planner mode, a forced shift, or a target range."""
    if plan not in PLAN_CHOICES:
        raise UserInputError(f"key plan must be one of {', '.join(PLAN_CHOICES)} (got {plan!r})")
    if plan == "transpose":
        return {"transpose": transpose if transpose is not None else 0.0, "target_range": None}
    if plan == "target range":
        if not (target_range or "").strip():
            raise UserInputError("target range: give notes like C3-A4 (or Hz like 130-440)")
        return {"transpose": None, "target_range": target_range.strip()}
    return {"plan_mode": plan, "transpose": None, "target_range": None}


def cover_settings(preset: str | None, values: dict[str, Any]) -> CoverSettings:
    """The settings of a job from the app: defaults < ``preset`` < the controls' ``values``; a
    bad value raises :class:`UserInputError` naming its control."""
    layers = []
    if preset:
        if preset not in PRESETS:
            raise UserInputError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        layers += [preset_layer(preset), Layer({"preset": preset}, lambda name: "preset")]
    layers.append(Layer({k: v for k, v in values.items() if v is not None or SCHEMA[k].optional},
                        lambda name: f"'{SCHEMA[name].label}'"))
    return resolve(*layers)


# -- recipes from the app ---------------------------------------------------------------------------
def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


@dataclass
class SectionRow:
    """One row of the Vocal feature tab's sections table."""

    by: str
    range: str
    voice: str
    layer: str = "replace"
    level_db: float = 0.0
    pan: float = 0.0
    original_level_db: float = 0.0
    original_pan: float = 0.0


def section_rows(table: Any) -> list[SectionRow]:
    """The sections table (rows of :data:`SECTION_COLUMNS`; a pandas frame or lists) as rows;
    blank rows skipped, numbers read, ``by`` is ``time`` or ``phrases``."""
    rows = table.values.tolist() if hasattr(table, "values") else list(table or [])
    out = []
    for i, row in enumerate(rows, 1):
        cells = ["" if c is None or (isinstance(c, float) and c != c) else c for c in list(row)]
        cells += [""] * (len(SECTION_COLUMNS) - len(cells))
        if not any(str(c).strip() for c in cells[:3]):
            continue
        by = str(cells[0]).strip().lower() or "time"
        if by not in ("time", "phrases"):
            raise UserInputError(f"section {i}: 'by' must be time or phrases (got {cells[0]!r})")
        numbers = []
        for name, cell in zip(SECTION_COLUMNS[4:], cells[4:]):
            try:
                numbers.append(float(cell) if str(cell).strip() else float(SCHEMA[name].default))
            except ValueError:
                raise UserInputError(f"section {i}: {SCHEMA[name].label} must be a number (got {cell!r})") from None
        out.append(SectionRow(by, str(cells[1]).strip(), str(cells[2]).strip(),
                              str(cells[3]).strip() or str(SCHEMA["layer"].default), *numbers))
    if not out:
        raise UserInputError("add at least one section (by time, e.g. 0:30-1:00, or by phrases, e.g. 2-3)")
    return out


def feature_recipe(input_files: dict[str, str], sections: list[SectionRow], preset: str | None,
                   settings: dict[str, Any], options: dict[str, Any]) -> str:
    """The recipe TOML of a vocal feature made in the app (``singvc run`` re-runs it with the
    input files beside it). ``input_files``: ``song``, or ``vocals`` (+ ``instrumental``) file
    names; voices are saved profiles, named by the sections."""
    lines = ["# made by 'singvc ui'; re-run it with: singvc run THIS_FILE (the input files beside it)",
             'description = "vocal feature made in singvc ui"']
    if preset:
        lines.append(f"preset = {toml_value(preset)}")
    lines += ["", "[input]"] + [f"{k} = {toml_value(v)}" for k, v in input_files.items() if v]
    voices = sorted({s.voice for s in sections if s.voice != "original"})
    for voice in voices:
        lines += ["", f"[voices.{toml_key(voice)}]", f"ref = {toml_value(voice)}"]
    lines += ["", "[feature]"] + [f"{k} = {toml_value(v)}" for k, v in options.items() if v is not None]
    for sec in sections:
        lines += ["", "[[feature.sections]]", f"{sec.by} = {toml_value(sec.range)}", f"voice = {toml_value(sec.voice)}",
                  f"layer = {toml_value(sec.layer)}"]
        if sec.layer != "replace" or sec.level_db or sec.pan:
            lines += [f"level_db = {toml_value(sec.level_db)}", f"pan = {toml_value(sec.pan)}"]
        if sec.layer != "replace":
            lines += [f"original_level_db = {toml_value(sec.original_level_db)}",
                      f"original_pan = {toml_value(sec.original_pan)}"]
    shown = {k: v for k, v in settings.items() if v is not None}
    if shown:
        lines += ["", "[settings]"] + [f"{k} = {toml_value(v)}" for k, v in shown.items()]
    lines += ["", "[output]", 'dir = "out"', "daw = false", ""]
    return "\n".join(lines)


def check_app_recipe(recipe: Recipe) -> None:
    """A recipe run by the app names no file of the machine: every voice is a saved profile,
    no model folder; the app sets the input files and the output folder itself."""
    profiles = list_profiles()
    tables = dict(recipe.get("voices", {}))
    if "voice" in recipe.data:
        tables["voice"] = recipe.data["voice"]
    for name, table in tables.items():
        ref = table.get("ref")
        if ref is not None and ref not in profiles:
            raise UserInputError(f"voice {name!r}: in the app a voice must be a saved voice (known: "
                                 f"{', '.join(sorted(profiles)) or 'none'}), not a file ({ref!r})")
    if recipe.get("settings.separator_repo"):
        raise UserInputError("settings.separator_repo: the app does not open model folders; use the CLI")
    preset = recipe.get("preset")
    if preset and preset not in PRESETS:
        raise UserInputError(f"preset {preset!r}: the app takes a shipped preset ({', '.join(PRESETS)})")


# -- the app -------------------------------------------------------------------------------------------
class App:
    """The app's state: its working folder, the results cache, engines (models loaded once and
    shared by every job), the running job and its progress. One job runs at a time.

    Args:
        workdir: the working folder (default :func:`default_workdir`).
        cache_dir: the results cache (default: the CLI's, so the CLI and the app share it).
        max_upload_mb: the largest upload accepted.
    """

    def __init__(self, workdir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                 max_upload_mb: float = MAX_UPLOAD_MB) -> None:
        self.workspace = Workspace(workdir or default_workdir(), int(max_upload_mb * 1_000_000))
        self.cache = Cache(cache_dir)
        self.progress = Progress()
        self._engines: dict[tuple, Singvc] = {}
        self._job_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self.running: Path | None = None
        #: the results table of the running batch, as it grows
        self.live_rows: list[list] = []

    # -- engines and jobs ----------------------------------------------------------------------
    def engine_for(self, settings: CoverSettings, separates: bool = False) -> Singvc:
        """An engine with ``settings`` that shares the models already loaded for the same device
        and separator (so a second run loads nothing and reuses the cache); ``separates``: the
        job separates a song (the separator is then loaded into the shared engine)."""
        key = (settings.device, settings.separator_model, settings.pitch_backend)
        base = self._engines.get(key)
        if base is None:
            base = self._engines[key] = Singvc(settings, cache=self.cache, progress=False)
        if separates:
            base.separator_model  # loaded once into the shared engine
        engine = base.with_settings(**dataclasses.asdict(settings))
        engine.callback = self.progress
        return engine

    def run_job(self, kind: str, stages: tuple[str, ...], work: Callable[[Path], JobResult],
                keep_on_cancel: bool = False) -> JobResult:
        """Run ``work(job folder)`` as the only job: a cancelled or failed job's folder is removed
        whole (``keep_on_cancel``: a batch keeps the songs done); an error becomes its one line."""
        with self._job_lock:
            clear_cancel()
            self.progress.reset(stages)
            job = self.workspace.new_job(kind)
            with self._state_lock:
                self.running = job
            try:
                result = work(job)
                for stage in self.progress.snapshot()[0]:
                    self.progress.finish(stage)
                return result
            except Cancelled:
                if not keep_on_cancel:
                    self.workspace.remove(job)
                return JobResult("cancelled", "singvc: cancelled; the job's working folder was removed",
                                 job if keep_on_cancel else None)
            except Exception as exc:  # every error, expected or a bug: one line, nothing left behind
                if not isinstance(exc, SingvcError):
                    log.error("job %s failed", job.name, exc_info=exc)
                self.workspace.remove(job)
                return JobResult("failed", error_line(exc))
            finally:
                with self._state_lock:
                    self.running = None
                clear_cancel()

    def cancel(self) -> str:
        """Ask the running job to stop at its next block of audio."""
        with self._state_lock:
            if self.running is None:
                return "no job is running"
            request_cancel()
            return "cancelling: the job stops at its next block of audio"

    # -- cover --------------------------------------------------------------------------------------
    def run_cover(self, song: str | None = None, vocals: str | None = None, instrumental: str | None = None,
                  voice_clip: str | None = None, voice_profile: str | None = None, preset: str | None = None,
                  settings: dict[str, Any] | None = None, daw: bool = True) -> JobResult:
        """A cover of an uploaded song (or vocal + instrumental, or a vocal only: ``settings``
        ``separation=False``) toward an uploaded clip or a saved voice. Writes
        ``jobs/<job>/out/`` (the CLI's outputs, ``plan.png``, with ``daw`` a zip of the session)."""
        values = dict(settings or {})
        resolved = cover_settings(preset, values)  # a bad value stops the job before any copy
        if song is None and vocals is None:
            raise UserInputError("give a song, or a vocal (with or without an instrumental)")
        if voice_profile and voice_profile not in list_profiles():
            raise UserInputError(f"no saved voice {voice_profile!r}")
        separates = resolved.separation and vocals is None
        stages = (("voice",) if voice_clip and not voice_profile else ()) + (("separation",) if separates else ()) \
            + ("pitch",) + (("split",) if resolved.backing != "off" else ()) \
            + (("dereverb",) if resolved.dereverb else ()) + ("convert", "finish")

        def work(job: Path) -> JobResult:
            taken: set[str] = set()
            inputs = job / "inputs"
            inputs.mkdir()
            song_path = self.workspace.take(song, inputs, "song", taken) if song else None
            vocals_path = self.workspace.take(vocals, inputs, "vocals", taken) if vocals else None
            inst_path = self.workspace.take(instrumental, inputs, "instrumental", taken) if instrumental else None
            clip = self.workspace.take(voice_clip, inputs, "voice", taken) if voice_clip and not voice_profile else None
            profile = load_profile(voice_profile) if voice_profile else None
            engine = self.engine_for(resolved, separates)
            measured = None
            if clip is not None and engine.converter().uses_voice:  # measured here: its own progress bar
                ref = load_voice(clip)
                if ref.audio is None:
                    raise UserInputError(f"{clip.name} is a voice profile, not a clip; enroll it or pick it "
                                         "as a saved voice")
                self.progress.alias = {"pitch": "voice"}
                start = time.perf_counter()
                try:
                    profile = engine.voice_profile(ref.audio, ref.sample_rate, name=ref.name)
                finally:
                    self.progress.alias = {}
                measured = time.perf_counter() - start
                self.progress.finish("voice")
            out = job / "out"
            extra = None if measured is None else {"app": {
                "voice_seconds": round(measured, 3),
                "note": "the clip was measured into a voice profile before the cover (not in 'seconds')"}}
            report = cover_file(None if vocals_path else song_path, out, voice_path=clip, engine=engine,
                                vocals_path=vocals_path, instrumental_path=inst_path, daw=daw, profile=profile,
                                extra_report=extra)
            files = {name: out / name for name in report["outputs"] if name != "session"}
            if daw:
                title = Path(song_path or vocals_path).stem
                files["session.zip"] = zip_folder(out / "session", out / f"{title}-session.zip", f"{title}-session")
            self.progress.finish("finish")
            return JobResult("done", f"done: {out.relative_to(self.workspace.root)}", job, report, files)

        return self.run_job("cover", stages, work)

    # -- vocal feature ------------------------------------------------------------------------------
    def feature_recipe_text(self, input_names: dict[str, str], table: Any, preset: str | None,
                            settings: dict[str, Any], options: dict[str, Any]) -> str:
        """The recipe of a feature, checked (parsed like ``singvc run`` would, voices known)."""
        text = feature_recipe(input_names, section_rows(table), preset, settings, options)
        check_app_recipe(parse_recipe(text, "recipe.toml"))
        return text

    def save_recipe(self, text: str, name: str = "feature") -> Path:
        """Write a recipe into ``recipes/`` for download; returns its path."""
        return write_text(self.workspace.recipes / f"{safe_name(name)}-{time.strftime('%Y%m%d-%H%M%S')}.toml", text)

    def run_feature(self, song: str | None, vocals: str | None, instrumental: str | None, table: Any,
                    preset: str | None = None, settings: dict[str, Any] | None = None,
                    options: dict[str, Any] | None = None) -> JobResult:
        """A vocal feature: the recipe is written into the job folder beside copies of the inputs
        and run as ``singvc run`` would; the result's files include ``recipe.toml``."""
        values = {k: v for k, v in (settings or {}).items() if v is not None}
        cover_settings(preset, values)
        if song is None and vocals is None:
            raise UserInputError("give a song, or a vocal (with or without an instrumental)")
        sections = section_rows(table)  # a bad table stops the job before any copy

        def work(job: Path) -> JobResult:
            taken: set[str] = set()
            names = {}
            for role, upload in (("song", None if vocals else song), ("vocals", vocals), ("instrumental", instrumental)):
                if upload:
                    names[role] = self.workspace.take(upload, job, role, taken).name
            text = feature_recipe(names, sections, preset, values, dict(options or {}))
            path = write_text(job / "recipe.toml", text)
            recipe = load_recipe(path)
            check_app_recipe(recipe)
            engine = self.engine_for(recipe.settings(), separates)
            out = job / "out"
            report = run_recipe(recipe, engine, out)
            files = {name: out / name for name in report["outputs"] if name != "session"}
            files["recipe.toml"] = path
            self.progress.finish("finish")
            return JobResult("done", f"done: {out.relative_to(self.workspace.root)}", job, report, files)

        resolved = cover_settings(preset, values)
        separates = resolved.separation and vocals is None
        stages = (("separation",) if separates else ()) + ("pitch",) \
            + (("split",) if resolved.backing != "off" else ()) + ("convert", "finish")
        return self.run_job("feature", stages, work)

    # -- batch --------------------------------------------------------------------------------------
    def run_batch(self, name: str, songs: list[str], recipe_text: str) -> JobResult:
        """The songs of batch ``name`` converted with one recipe into ``batches/NAME/out/<song>/``:
        uploads are added to ``batches/NAME/songs/``; every song there is run, and those done
        before with the same recipe and input are skipped, so running the batch again resumes
        it. Returns a results table in ``rows``."""
        name = safe_name(name or "batch", default="batch")
        folder = self.workspace.batches / name
        recipe = parse_recipe(recipe_text or "", "batch recipe", base_dir=folder)
        check_app_recipe(recipe)
        settings = recipe.settings()

        def work(job: Path) -> JobResult:
            if songs:
                (folder / "songs").mkdir(parents=True, exist_ok=True)
            taken: set[str] = set()
            for upload in songs:  # added to the batch's songs (a song of the same name is replaced)
                copied = self.workspace.take(upload, job, "song", taken)
                os.replace(copied, folder / "songs" / copied.name)
            paths = sorted(p for p in (folder / "songs").glob("*") if p.is_file()
                           and p.suffix.lower() in AUDIO_SUFFIXES)
            if not paths:
                raise UserInputError("add one or more songs")
            write_text(folder / "recipe.toml", recipe_text)
            engine = self.engine_for(settings, settings.separation)
            rows: list[list] = []
            self.live_rows = rows  # the page shows the table as it grows
            self.progress.reset(tuple(f"song {i}" for i in range(1, len(paths) + 1)))
            for item in run_batch(recipe, paths, engine, folder / "out"):
                shift = item.report.get("shift_semitones") if item.report else None
                rows.append([item.index, item.song.name, item.status, round(item.seconds, 1),
                             "" if shift is None else f"{shift:+g}",
                             item.message if item.status == "failed" else str(item.out_dir.relative_to(self.workspace.root))])
                self.progress.finish(f"song {item.index}")
            self.workspace.remove(job)
            counts = {s: sum(r[2] == s for r in rows) for s in ("done", "skipped", "failed")}
            files = {}
            if (folder / "out").is_dir():
                files["results.zip"] = zip_folder(folder / "out", folder / f"{name}-results.zip", f"{name}-results")
            return JobResult("done", f"{len(rows)} songs: {counts['done']} done, {counts['skipped']} skipped (done "
                                     f"before), {counts['failed']} failed", folder, files=files, rows=rows)

        return self.run_job("batch", (), work)

    # -- voices -------------------------------------------------------------------------------------
    def enroll(self, name: str, clips: list[str], replace: bool = False) -> JobResult:
        """A voice profile measured from uploaded clips, saved in the profiles folder (where
        ``singvc voice`` and ``--voice NAME`` find it)."""
        name = check_name((name or "").strip())
        out = profiles_dir() / f"{name}.json"
        if out.exists() and not replace:
            raise UserInputError(f"a saved voice {name!r} exists; tick 'replace' to measure it again")
        if not clips:
            raise UserInputError("add one or more clips of the voice (3 s or more of voice in all)")

        def work(job: Path) -> JobResult:
            taken: set[str] = set()
            copies = [self.workspace.take(c, job, "clip", taken) for c in clips]
            engine = self.engine_for(CoverSettings(separation=False))
            audio, tracks = [], []
            for path in copies:
                ref = load_voice(path)
                if ref.audio is None:
                    raise UserInputError(f"{path.name} is a voice profile; enroll from audio clips")
                audio.append((ref.audio, ref.sample_rate))
                tracks.append(engine.track(ref.audio, ref.sample_rate, engine.settings.reference_pitch_model)[0])
            profile = analyse_voice(audio, tracks, name, clip_names=[p.name for p in copies])
            profile.save(out)
            self.workspace.remove(job)
            return JobResult("done", f"saved voice {name}: " + voice_line(profile.register, profile.voiced_seconds)
                             + "".join(f"; warning: {w}" for w in profile.warnings))

        return self.run_job("enroll", ("pitch",), work)

    @staticmethod
    def delete_voice(name: str) -> str:
        """Delete a saved voice of the user (the shipped ones stay)."""
        path = list_profiles().get(name or "")
        if path is None:
            raise UserInputError(f"no saved voice {name!r}")
        if path.parent.resolve() != profiles_dir().resolve():
            raise UserInputError(f"{name} ships with singvc and cannot be deleted")
        reference_path(path).unlink(missing_ok=True)
        path.unlink()
        return f"deleted voice {name}"

    # -- models and cache ---------------------------------------------------------------------------
    def cache_text(self) -> str:
        entries = self.cache.entries()
        lines = [f"Cache folder `{self.cache.root}`: {sum(e[2] for e in entries) / 1e9:.2f} GB in {len(entries)} "
                 f"entries (limit {self.cache.max_bytes / 1e9:g} GB, least recently used removed first)"]
        for kind in KINDS:
            mine = [e for e in entries if e[1] == kind]
            lines.append(f"- {kind}: {len(mine)} entries, {sum(e[2] for e in mine) / 1e6:.1f} MB")
        jobs = self.workspace.finished_jobs()
        lines.append(f"\nApp working folder `{self.workspace.root}`: {folder_bytes(self.workspace.root) / 1e6:.1f} MB, "
                     f"{len(jobs)} job folders")
        return "\n".join(lines)

    def prune_cache(self, max_gb: float | None) -> str:
        if max_gb is None or not max_gb >= 0:
            raise UserInputError(f"size limit must be a number of GB, 0 or more (got {max_gb})")
        removed, freed = self.cache.prune(int(max_gb * 1e9))
        return f"removed {removed} entries ({freed / 1e9:.2f} GB); {self.cache.size() / 1e9:.2f} GB left"

    def clear_jobs(self) -> str:
        """Remove the folders of finished jobs (not the one running)."""
        removed = 0
        for job in self.workspace.finished_jobs():
            if job != self.running:
                self.workspace.remove(job)
                removed += 1
        return f"removed {removed} job folders"


def voice_line(register: dict, voiced_seconds: float) -> str:
    return (f"middle note {register['median']['note']}, tessitura {register['p10']['note']}-{register['p90']['note']}, "
            f"range {register['low']['note']}-{register['high']['note']}, {voiced_seconds:.1f} s of voice")


def voice_rows() -> list[list]:
    """Every saved voice: name, whose, middle note, tessitura (P10-P90), range (P5-P95), seconds."""
    rows = []
    mine = profiles_dir().resolve()
    for name, path in sorted(list_profiles().items()):
        try:
            p = load_profile(path)
        except SingvcError as exc:
            rows.append([name, "yours" if path.parent.resolve() == mine else "shipped", "", "", "", "",
                         error_line(exc)])
            continue
        r = p.register
        rows.append([name, "yours" if path.parent.resolve() == mine else "shipped", r["median"]["note"],
                     f"{r['p10']['note']}-{r['p90']['note']}", f"{r['low']['note']}-{r['high']['note']}",
                     round(p.voiced_seconds, 1), "; ".join(p.warnings)])
    return rows


def voice_details(name: str) -> str:
    """A saved voice in Markdown: register as notes and Hz, clips, warnings."""
    if not name:
        return ""
    p = load_profile(name)
    r = p.register
    lines = [f"### {p.name}", voice_line(r, p.voiced_seconds), "",
             "| | note | Hz |", "| --- | --- | --- |"]
    for key, label in (("low", "lowest (P5)"), ("p10", "tessitura low (P10)"), ("median", "middle (median)"),
                       ("p90", "tessitura high (P90)"), ("high", "highest (P95)")):
        lines.append(f"| {label} | {r[key]['note']} | {r[key]['hz']:.1f} |")
    lines += ["", f"Measured from: {', '.join(p.clips) or 'unknown'}", f"Created: {p.created or 'unknown'}"]
    lines += [f"Warning: {w}" for w in p.warnings]
    return "\n".join(lines)


def model_rows() -> list[list]:
    """Every known model: name, kind, licence, size (MB), status, folder (as ``singvc models``)."""
    rows = []
    for spec in weights.known():
        try:
            found = weights.locate(spec)
        except SingvcError as exc:
            rows.append([spec.name, spec.kind, spec.licence, "", "unavailable", error_line(exc)])
            continue
        word = weights.summary(found)
        folders = sorted({str(f.path.parent) for f in found})
        if word in ("missing", "incomplete") and weights.other_copy(spec):
            word, folders = "present (other copy)", [str(weights.other_copy(spec))]
        size = spec.size
        if size is None and found and all(f.size is not None for f in found):
            size = sum(f.size for f in found)
        rows.append([spec.name, spec.kind, spec.licence, "" if size is None else round(size / 1e6, 1), word,
                     ", ".join(folders)])
    return rows


# -- the page ----------------------------------------------------------------------------------------
CSS = """
.singvc-stage { display: flex; gap: 0.6em; align-items: center; margin: 0.2em 0; }
.singvc-stage-label { width: 15em; }
.singvc-stage progress { flex: 1; height: 0.9em; }
.singvc-stage-pct { width: 3.5em; text-align: right; font-variant-numeric: tabular-nums; }
"""


def _gradio():
    """Gradio, imported only when the app is built (``pip install 'singvc[ui]'``)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        import gradio as gr
    except ImportError:
        raise InstallError("the web app needs Gradio: pip install 'singvc[ui]'") from None
    return gr


def theme(gr):
    """Gradio's default look with the system's fonts (no web fonts to fetch)."""
    return gr.themes.Default(font=["system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
                             font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"])


def control(gr, name: str, **overrides):
    """The control of a setting, from its declaration: a checkbox, a menu of its choices, a
    slider over its range (with its unit), or a text box; its label and help."""
    s = SCHEMA[name]
    label = f"{s.label} ({s.unit})" if s.unit else s.label
    info = s.help[0].upper() + s.help[1:]
    kwargs = {"label": label, "info": info, "elem_id": f"setting-{name}"}
    if s.kind is bool:
        return gr.Checkbox(**{"value": bool(s.default), **kwargs, **overrides})
    if s.choices:
        choices = [(f"{c}: {CONVERTERS[c].summary}", c) for c in s.choices] if name == "converter" else list(s.choices)
        return gr.Dropdown(**{"choices": choices, "value": s.default, **kwargs, **overrides})
    if s.range:
        lo, hi = s.range
        step = 1 if s.kind is int or name == "transpose" else (hi - lo) / 100
        return gr.Slider(lo, hi, **{"value": s.default if s.default is not None else 0, "step": step, **kwargs,
                                    **overrides})
    return gr.Textbox(**{"value": s.default or "", **kwargs, **overrides})


def build_ui(app: App):
    """The page: Cover, Vocal feature, Batch, Voices, Models and cache."""
    gr = _gradio()
    profiles = sorted(list_profiles())
    with gr.Blocks(title="singvc", analytics_enabled=False, delete_cache=(3600, 86400)) as demo:
        gr.Markdown("# singvc\nSing a song in another voice: upload the song and a voice, press **Make the cover**.")
        with gr.Tabs():
            with gr.Tab("Cover", id="cover"):
                cover = _cover_tab(gr, app, profiles)
            with gr.Tab("Vocal feature", id="feature"):
                _feature_tab(gr, app, profiles)
            with gr.Tab("Batch", id="batch"):
                _batch_tab(gr, app)
            with gr.Tab("Voices", id="voices"):
                voices = _voices_tab(gr, app)
            with gr.Tab("Models and cache", id="models"):
                _models_tab(gr, app)
        refresh = [c for c in (*cover, *voices)]
        demo.load(lambda: [gr.update(choices=sorted(list_profiles()))] * len(refresh), None, refresh,
                  queue=False)
    return demo


def _inputs(gr, prefix: str):
    mode = gr.Radio(list(INPUT_MODES), value="song", label="What you have",
                    info="song: a full mix, the vocal is separated; vocal + instrumental: your own stems; "
                         "vocal only: a dry or solo vocal", elem_id=f"{prefix}-input-mode")
    song = gr.File(label="Song", file_types=list(AUDIO_SUFFIXES), elem_id=f"{prefix}-song")
    vocals = gr.File(label="Vocal stem", file_types=list(AUDIO_SUFFIXES), visible=False, elem_id=f"{prefix}-vocals")
    inst = gr.File(label="Instrumental stem", file_types=list(AUDIO_SUFFIXES), visible=False,
                   elem_id=f"{prefix}-instrumental")

    def show(m):
        return (gr.update(visible=m != "vocal + instrumental", label="Vocal" if m == "vocal only" else "Song"),
                gr.update(visible=m == "vocal + instrumental"), gr.update(visible=m == "vocal + instrumental"))

    mode.change(show, mode, [song, vocals, inst], queue=False)
    return mode, song, vocals, inst


def _files_of(mode: str, song, vocals, inst) -> tuple[str | None, str | None, str | None, bool]:
    """(song, vocals, instrumental, separation) from the input controls."""
    if mode == "vocal + instrumental":
        if not vocals:
            raise UserInputError("add the vocal stem")
        return None, vocals, inst, True
    if not song:
        raise UserInputError("add the song" if mode == "song" else "add the vocal")
    return song, None, None, mode == "song"


def _run_in_thread(app: App, job: Callable[[], JobResult]) -> Iterator[tuple[str, JobResult | None]]:
    """Run ``job`` on a worker thread; yield the progress HTML every half second, then the result."""
    box: dict[str, Any] = {}

    def target():
        try:
            box["result"] = job()
        except SingvcError as exc:  # refused before it started (a bad setting, a missing file)
            box["result"] = JobResult("failed", error_line(exc))
        except Exception as exc:  # a bug: still one line
            log.error("job failed before it started", exc_info=exc)
            box["result"] = JobResult("failed", error_line(exc))

    worker = threading.Thread(target=target, name="singvc-job", daemon=True)
    worker.start()
    while worker.is_alive():
        yield progress_html(app.progress), None
        worker.join(0.5)
    result = box["result"]
    yield progress_html(app.progress, result.status), result


def _cover_tab(gr, app: App, profiles: list[str]):
    with gr.Row():
        with gr.Column():
            gr.Markdown("### 1. The song")
            mode, song, vocals, inst = _inputs(gr, "cover")
            gr.Markdown("### 2. The new voice")
            voice_mode = gr.Radio(list(VOICE_MODES), value="clip", label="Target voice",
                                  info="clip: upload or record 3-60 s of the voice; saved voice: one enrolled in "
                                       "the Voices tab; none: pitch shift only", elem_id="cover-voice-mode")
            clip = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Voice clip (upload or record)",
                            elem_id="cover-voice-clip")
            saved = gr.Dropdown(profiles, value=None, label="Saved voice", visible=False, elem_id="cover-voice-saved")
            voice_mode.change(lambda m: (gr.update(visible=m == "clip"), gr.update(visible=m == "saved voice")),
                              voice_mode, [clip, saved], queue=False)
        with gr.Column():
            gr.Markdown("### 3. The sound")
            preset = gr.Dropdown(list(PRESETS), value="quality" if "quality" in PRESETS else None,
                                 label="Preset", info="fast: quick auditions; quality: the defaults; natural, "
                                 "strong: how far the timbre moves. Choosing one sets the controls below",
                                 elem_id="cover-preset")
            converter = control(gr, "converter")
            plan = gr.Radio(list(PLAN_CHOICES), value=SCHEMA["plan_mode"].default, label="Key",
                            info=SCHEMA["plan_mode"].help + "; transpose: your own shift; target range: "
                                 "the notes the voice should sing in", elem_id="cover-plan")
            transpose = control(gr, "transpose", visible=False, value=0)
            target_range = control(gr, "target_range", visible=False)
            strength = control(gr, "strength")
            plan.change(lambda p: (gr.update(visible=p == "transpose"), gr.update(visible=p == "target range")),
                        plan, [transpose, target_range], queue=False)
            with gr.Accordion("Advanced settings", open=False):
                advanced = [control(gr, n) for n in ADVANCED_SETTINGS]
            daw = gr.Checkbox(value=True, label="DAW session zip",
                              info="every stem, melody MIDI, tempo and key, .dawproject and REAPER .rpp")
            with gr.Row():
                run = gr.Button("Make the cover", variant="primary", elem_id="cover-run")
                cancel = gr.Button("Cancel", variant="stop", elem_id="cover-cancel")
    status = gr.Textbox(label="Status", interactive=False, elem_id="cover-status")
    progress = gr.HTML(elem_id="cover-progress")
    gr.Markdown("### Result")
    with gr.Row():
        mix = gr.Audio(label="Mix", type="filepath", interactive=False, buttons=["download"], elem_id="out-mix")
        converted = gr.Audio(label="Converted vocal", type="filepath", interactive=False, buttons=["download"], elem_id="out-converted")
    with gr.Row():
        original = gr.Audio(label="Original vocal", type="filepath", interactive=False, buttons=["download"], elem_id="out-original")
        instrumental = gr.Audio(label="Instrumental", type="filepath", interactive=False, buttons=["download"], elem_id="out-instrumental")
    with gr.Row():
        plot = gr.Image(label="Range plot: the vocal's notes against the new voice's", type="filepath",
                        interactive=False, elem_id="out-plot")
        with gr.Column():
            summary = gr.Markdown(elem_id="out-summary")
            downloads = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="out-files")

    settings_controls = (converter, strength, *advanced)
    settings_names = ("converter", "strength", *ADVANCED_SETTINGS)

    def on_preset(name):
        s = cover_settings(name, {})
        mode_ = "transpose" if s.transpose is not None else "target range" if s.target_range else s.plan_mode
        return [gr.update(value=getattr(s, n)) for n in settings_names] + [
            gr.update(value=mode_), gr.update(value=s.transpose or 0, visible=mode_ == "transpose"),
            gr.update(value=s.target_range or "", visible=mode_ == "target range")]

    preset.change(on_preset, preset, [*settings_controls, plan, transpose, target_range], queue=False)
    outputs = [status, progress, mix, converted, original, instrumental, plot, summary, downloads]

    def on_run(mode_, song_, vocals_, inst_, voice_mode_, clip_, saved_, preset_, plan_, transpose_, range_, daw_,
               *rest):
        empty = [None] * 7
        try:
            song_p, vocals_p, inst_p, separation = _files_of(mode_, song_, vocals_, inst_)
            values = control_values(settings_names, rest)
            values.update(plan_values(plan_, transpose_, range_))
            values["separation"] = separation
            clip_p = clip_ if voice_mode_ == "clip" else None
            saved_p = saved_ if voice_mode_ == "saved voice" else None
            if voice_mode_ == "clip" and not clip_p:
                raise UserInputError("add a clip of the voice (or choose a saved voice, or none)")
            if voice_mode_ == "saved voice" and not saved_p:
                raise UserInputError("choose a saved voice")
        except SingvcError as exc:
            yield [error_line(exc), "", *empty]
            return
        for html, result in _run_in_thread(app, lambda: app.run_cover(
                song_p, vocals_p, inst_p, clip_p, saved_p, preset_, values, daw=bool(daw_))):
            if result is None:
                yield [gr.skip(), html, *[gr.skip()] * 7]
                continue
            if result.status != "done":
                yield [result.message, html, *empty]
                return
            f = result.files
            yield [result.message, html, str(f["mix.wav"]), str(f.get("vocals_converted.wav") or ""),
                   str(f.get("vocals_original.wav") or ""), str(f.get("instrumental.wav") or ""),
                   str(f["plan.png"]), cover_summary(result.report or {}),
                   [str(p) for p in f.values()]]

    run.click(on_run, [mode, song, vocals, inst, voice_mode, clip, saved, preset, plan, transpose, target_range, daw,
                       *settings_controls], outputs, concurrency_limit=1, concurrency_id="jobs")
    cancel.click(lambda: app.cancel(), None, status, queue=False)
    return (saved,)


def _feature_tab(gr, app: App, profiles: list[str]):
    gr.Markdown("Several voices in one song: each section (by time, `0:30-1:00`, or by the vocal's phrases, "
                "`2-3`) is sung by a saved voice or left `original`; `duet` and `double` layer the new voice "
                "with the original. The recipe below is what runs: download it to re-run the job with "
                "`singvc run recipe.toml` (the song file beside it).")
    with gr.Row():
        with gr.Column():
            mode, song, vocals, inst = _inputs(gr, "feature")
            preset = gr.Dropdown(list(PRESETS), value="quality" if "quality" in PRESETS else None, label="Preset",
                                 elem_id="feature-preset")
            converter = control(gr, "converter")
            strength = control(gr, "strength")
            plan_mode = control(gr, "plan_mode")
            with gr.Accordion("Section boundaries", open=False):
                options = [control(gr, n) for n in ("crossfade_ms", "snap_seconds", "min_pause", "phrase_pause")]
        with gr.Column():
            voice_list = gr.Markdown("Saved voices: " + (", ".join(profiles) or "none yet (see the Voices tab)"))
            headers = ["by (time or phrases)", "range (0:30-1:00 or 2-3)", "voice (saved voice or original)",
                       f"{SCHEMA['layer'].label} ({', '.join(SCHEMA['layer'].choices)})",
                       *[f"{SCHEMA[n].label}{' (' + SCHEMA[n].unit + ')' if SCHEMA[n].unit else ''}"
                         for n in SECTION_COLUMNS[4:]]]
            first = profiles[0] if profiles else "original"
            table = gr.Dataframe(value=[["time", "0:00-0:03", "original", "replace", 0, 0, 0, 0],
                                        ["time", "0:03-0:07", first, "duet", 0, -0.3, -3, 0.3]],
                                 headers=headers, datatype=["str", "str", "str", "str", "number", "number", "number",
                                                            "number"],
                                 column_count=len(SECTION_COLUMNS), row_count=2, interactive=True,
                                 label="Sections", elem_id="feature-sections")
            show = gr.Button("Show the recipe", elem_id="feature-show")
            recipe = gr.Code(label="Recipe (TOML) this job runs", language=None, interactive=False, lines=12,
                             elem_id="feature-recipe")
            recipe_file = gr.File(label="Download the recipe", interactive=False, elem_id="feature-recipe-file")
    with gr.Row():
        run = gr.Button("Make the feature", variant="primary", elem_id="feature-run")
        cancel = gr.Button("Cancel", variant="stop", elem_id="feature-cancel")
    status = gr.Textbox(label="Status", interactive=False, elem_id="feature-status")
    progress = gr.HTML()
    with gr.Row():
        mix = gr.Audio(label="Mix", type="filepath", interactive=False, buttons=["download"], elem_id="feature-mix")
        plot = gr.Image(label="Range plot", type="filepath", interactive=False, elem_id="feature-plot")
    downloads = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="feature-files")
    option_names = ("crossfade_ms", "snap_seconds", "min_pause", "phrase_pause")

    def gather(mode_, song_, vocals_, inst_, table_, preset_, converter_, strength_, plan_, *opts):
        song_p, vocals_p, inst_p, separation = _files_of(mode_, song_, vocals_, inst_)
        settings = {"converter": converter_, "strength": float(strength_), "plan_mode": plan_,
                    **({} if separation else {"separation": False})}
        names = {"song": None if vocals_p else Path(song_p).name, "vocals": vocals_p and Path(vocals_p).name,
                 "instrumental": inst_p and Path(inst_p).name}
        names = {k: safe_name(v, k) for k, v in names.items() if v}
        return song_p, vocals_p, inst_p, settings, names, dict(zip(option_names, opts))

    inputs = [mode, song, vocals, inst, table, preset, converter, strength, plan_mode, *options]

    def on_show(*values):
        try:
            song_p, vocals_p, inst_p, settings, names, opts = gather(*values)
            text = app.feature_recipe_text(names, values[4], values[5], settings, opts)
        except SingvcError as exc:
            return error_line(exc), gr.skip(), None
        return "recipe checked: it runs as shown", text, str(app.save_recipe(text))

    show.click(on_show, inputs, [status, recipe, recipe_file], queue=False)

    def on_run(*values):
        try:
            song_p, vocals_p, inst_p, settings, names, opts = gather(*values)
            text = app.feature_recipe_text(names, values[4], values[5], settings, opts)
        except SingvcError as exc:
            yield error_line(exc), "", gr.skip(), None, None, None, None
            return
        yield gr.skip(), "", text, gr.skip(), None, None, None
        for html, result in _run_in_thread(app, lambda: app.run_feature(song_p, vocals_p, inst_p, values[4],
                                                                       values[5], settings, opts)):
            if result is None:
                yield gr.skip(), html, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            elif result.status != "done":
                yield result.message, html, gr.skip(), gr.skip(), None, None, None
            else:
                f = result.files
                yield (result.message, html, f["recipe.toml"].read_text(), str(f["recipe.toml"]), str(f["mix.wav"]),
                       str(f["plan.png"]), [str(p) for p in f.values()])

    run.click(on_run, inputs, [status, progress, recipe, recipe_file, mix, plot, downloads],
              concurrency_limit=1, concurrency_id="jobs")
    cancel.click(lambda: app.cancel(), None, status, queue=False)
    return voice_list


BATCH_TEMPLATE = """# One recipe for every song of the batch (see recipes/ and README, 'Recipes').
# In the app a voice is a saved voice (the Voices tab); the app sets the songs and the output folder.
preset = "fast"

[voice]
ref = "{voice}"
# transpose = 12                  # or target_range = "C3-A4"; plan_mode = "free"

[output]
stems = true
"""


def _batch_tab(gr, app: App):
    gr.Markdown("Many songs, one recipe. Each song gets its own output folder; run the same batch name again "
                "to resume: songs already done with this recipe are skipped.")
    profiles = sorted(list_profiles())
    with gr.Row():
        with gr.Column():
            name = gr.Textbox(value="batch", label="Batch name", elem_id="batch-name")
            songs = gr.File(label="Songs", file_count="multiple", file_types=list(AUDIO_SUFFIXES),
                            elem_id="batch-songs")
        with gr.Column():
            recipe = gr.Code(value=BATCH_TEMPLATE.format(voice=profiles[0] if profiles else "NAME"), language=None,
                             interactive=True, lines=12, label="Recipe (TOML)", elem_id="batch-recipe")
    with gr.Row():
        run = gr.Button("Run the batch", variant="primary", elem_id="batch-run")
        cancel = gr.Button("Cancel", variant="stop", elem_id="batch-cancel")
    status = gr.Textbox(label="Status", interactive=False, elem_id="batch-status")
    progress = gr.HTML()
    results = gr.Dataframe(headers=["#", "song", "status", "seconds", "shift (semitones)", "output or error"],
                           interactive=False, label="Results", elem_id="batch-results")
    download = gr.File(label="Download every song's output (zip)", interactive=False, elem_id="batch-zip")

    def on_run(name_, songs_, recipe_):
        app.live_rows = []
        for html, result in _run_in_thread(app, lambda: app.run_batch(name_, list(songs_ or []), recipe_)):
            if result is None:
                yield gr.skip(), html, (list(app.live_rows) or gr.skip()), gr.skip()
            else:
                zipped = result.files.get("results.zip")
                yield result.message, html, result.rows or None, str(zipped) if zipped else None

    run.click(on_run, [name, songs, recipe], [status, progress, results, download], concurrency_limit=1,
              concurrency_id="jobs")
    cancel.click(lambda: app.cancel(), None, status, queue=False)


VOICE_HEADERS = ["name", "whose", "middle note", "tessitura (P10-P90)", "range (P5-P95)", "seconds of voice", "notes"]


def _voices_tab(gr, app: App):
    with gr.Row():
        with gr.Column():
            gr.Markdown("### Enroll a voice\nA few clips of the voice singing or speaking (3 s or more of voice in "
                        "all); the app measures its register and timbre and saves it under a name.")
            name = gr.Textbox(label="Name (letters, digits, _ . -)", elem_id="voice-name")
            clips = gr.File(label="Clips", file_count="multiple", file_types=list(AUDIO_SUFFIXES), elem_id="voice-clips")
            recorded = gr.Audio(sources=["microphone"], type="filepath", label="Or record a clip",
                                elem_id="voice-record")
            replace = gr.Checkbox(label="Replace a saved voice of this name", value=False)
            enroll = gr.Button("Enroll", variant="primary", elem_id="voice-enroll")
            status = gr.Textbox(label="Status", interactive=False, elem_id="voice-status")
        with gr.Column():
            table = gr.Dataframe(value=voice_rows(), headers=VOICE_HEADERS, interactive=False, label="Saved voices",
                                 elem_id="voice-table")
            pick = gr.Dropdown(sorted(list_profiles()), label="Inspect a voice", elem_id="voice-pick")
            details = gr.Markdown(elem_id="voice-details")
            delete = gr.Button("Delete this voice", variant="stop", elem_id="voice-delete")

    def on_enroll(name_, clips_, recorded_, replace_):
        uploads = list(clips_ or []) + ([recorded_] if recorded_ else [])
        result = None
        for _, result in _run_in_thread(app, lambda: app.enroll(name_, uploads, bool(replace_))):
            pass
        names = sorted(list_profiles())
        return result.message, voice_rows(), gr.update(choices=names, value=name_ if name_ in names else None)

    def on_pick(name_):
        try:
            return voice_details(name_)
        except SingvcError as exc:
            return error_line(exc)

    def on_delete(name_):
        try:
            message = App.delete_voice(name_)
        except SingvcError as exc:
            return error_line(exc), gr.skip(), gr.skip(), gr.skip()
        return message, voice_rows(), gr.update(choices=sorted(list_profiles()), value=None), ""

    enroll.click(on_enroll, [name, clips, recorded, replace], [status, table, pick], concurrency_limit=1,
                 concurrency_id="jobs")
    pick.change(on_pick, pick, details, queue=False)
    delete.click(on_delete, pick, [status, table, pick, details], queue=False)
    return (pick,)


def _models_tab(gr, app: App):
    gr.Markdown("### Models\nWhich model weights are on this machine (`singvc models fetch NAME` downloads one).")
    models = gr.Dataframe(value=model_rows(), headers=["name", "kind", "licence", "size (MB)", "status", "folder"],
                          interactive=False, elem_id="models-table")
    gr.Markdown("### Cache\nSeparation and pitch results, reused when the same song is converted again "
                "(with another voice, another strength, ...).")
    cache = gr.Markdown(app.cache_text(), elem_id="cache-info")
    with gr.Row():
        max_gb = gr.Number(value=round(app.cache.max_bytes / 1e9, 2), label="Prune the cache down to (GB)",
                           minimum=0, elem_id="cache-max-gb")
        prune = gr.Button("Prune", elem_id="cache-prune")
        clear_jobs = gr.Button("Remove finished job folders", elem_id="jobs-clear")
        refresh = gr.Button("Refresh", elem_id="models-refresh")
    status = gr.Textbox(label="Status", interactive=False, elem_id="cache-status")

    def safe(fn):
        def run(*args):
            try:
                message = fn(*args)
            except SingvcError as exc:
                message = error_line(exc)
            return message, app.cache_text(), model_rows()
        return run

    prune.click(safe(app.prune_cache), max_gb, [status, cache, models], concurrency_limit=1, concurrency_id="jobs")
    clear_jobs.click(safe(app.clear_jobs), None, [status, cache, models], concurrency_limit=1, concurrency_id="jobs")
    refresh.click(safe(lambda: "refreshed"), None, [status, cache, models], queue=False)


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, workdir: str | os.PathLike | None = None,
          cache_dir: str | os.PathLike | None = None, share: bool = False, max_upload_mb: float = MAX_UPLOAD_MB,
          open_browser: bool = False):
    """Build the app and start serving it (returns at once); returns ``(demo, url)``: stop it with
    ``demo.close()``, or wait with ``demo.block_thread()``.

    Gradio keeps its uploads and served files in the working folder's ``gradio/`` folder
    (``GRADIO_TEMP_DIR``); analytics are off; a public share link only with ``share``.
    """
    app = App(workdir, cache_dir, max_upload_mb)
    os.environ["GRADIO_TEMP_DIR"] = str(app.workspace.uploads)
    gr = _gradio()
    demo = build_ui(app)
    demo.queue(default_concurrency_limit=None)
    try:
        _, url, _ = demo.launch(server_name=host, server_port=port, share=share, inbrowser=open_browser,
                                prevent_thread_lock=True, quiet=True, show_error=False, theme=theme(gr), css=CSS,
                                max_file_size=int(max_upload_mb * 1_000_000),
                                allowed_paths=[str(app.workspace.jobs), str(app.workspace.recipes), str(app.workspace.batches)],
                                ssr_mode=False, pwa=False, mcp_server=False, footer_links=[], enable_monitoring=False)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise UserInputError(f"cannot serve on {host}:{port} ({exc.strerror or 'address in use'}); "
                             "choose another with --port N") from None
    demo.singvc_app = app
    return demo, url
