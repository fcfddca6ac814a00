"""The web app's cover job, timed: one song, then the same song with another voice (the second run
loads no model and reads the pitch track from the cache), through :class:`singvc.ui.App` as the
page calls it (no browser).

    PYTHONPATH=. python benchmarks/bench_ui.py                     # ../shared/data/vocals/jay_7s.flac
    PYTHONPATH=. python benchmarks/bench_ui.py --vocal V.flac --voices A.flac B.flac --preset quality

Prints one JSON line per run: wall seconds (the app's job, model loading included), the report's
stage seconds and cache hits. Works in a temporary folder (working folder, cache, home).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from singvc.ui import App

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--vocal", default=str(DATA / "vocals" / "jay_7s.flac"))
    p.add_argument("--voices", nargs="+", default=[str(DATA / "voices" / "s1p1.flac"), str(DATA / "voices" / "s2p1.flac")])
    p.add_argument("--preset", default="fast")
    p.add_argument("--daw", action="store_true", help="also the DAW session zip")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="singvc-bench-ui-") as tmp:
        os.environ["SINGVC_HOME"] = str(Path(tmp) / "home")
        app = App(Path(tmp) / "wd", cache_dir=Path(tmp) / "cache")

        def uploaded(path: str) -> str:  # as Gradio leaves an upload: under the app's uploads folder
            folder = Path(tempfile.mkdtemp(dir=app.workspace.uploads))
            return shutil.copy(path, folder / Path(path).name)

        song = uploaded(args.vocal)
        for voice in args.voices:
            start = time.perf_counter()
            result = app.run_cover(song=song, voice_clip=uploaded(voice), preset=args.preset,
                                   settings={"separation": False}, daw=args.daw)
            wall = time.perf_counter() - start
            report = result.report or {}
            print(json.dumps({"voice": Path(voice).name, "status": result.status, "wall_seconds": round(wall, 2),
                              "stage_seconds": report.get("seconds"),
                              "voice_seconds": (report.get("app") or {}).get("voice_seconds"), "cache_hits": report.get("cache_hits"),
                              "message": result.message}), flush=True)


if __name__ == "__main__":
    main()
