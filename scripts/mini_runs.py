"""Helpers shared by the scripts that measure a qwenimage-mini run at every export (mini_edit_progress.py,
mini_grpo_progress.py): the CLI as a subprocess, the run's exports not measured yet, its last step."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

QWEN = [sys.executable, "-m", "qwenimage.cli.main"]


def qwenimage(*args: str) -> None:
    """Run `qwenimage ARGS...` in a child process; a failure stops the script."""
    subprocess.run(QWEN + list(args), check=True)


def assemble(base: Path, export: Path, snap: Path) -> Path:
    """A pipeline folder of the base's components and the export's transformer (once)."""
    if not (snap / "model_index.json").is_file():
        qwenimage("mini", "assemble", "--base", str(base), "--transformer", str(export / "transformer"),
                  "--out", str(snap))
    return snap


def measure_new(run: Path, curve_name: str, evaluate: Callable[[Path], dict],
                only: set[int] | None = None) -> list[dict]:
    """Every `exports/step-N` of the run not in <run>/<curve_name> yet (of the steps in `only`, when given),
    measured by `evaluate(export)` and appended there (one JSON line each, so an interrupted script loses nothing
    measured); the whole curve."""
    curve_path = run / curve_name
    curve = [json.loads(line) for line in curve_path.read_text().splitlines()] if curve_path.is_file() else []
    done = {entry["step"] for entry in curve}
    for export in sorted((run / "exports").glob("step-*")):
        if export.name.endswith(".tmp"):
            continue
        step = int(export.name.split("-")[1])
        if step in done or (only is not None and step not in only):
            continue
        entry = evaluate(export)
        print(json.dumps(entry))
        with curve_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
        curve.append(entry)
    return sorted(curve, key=lambda entry: entry["step"])


def last_step(run: Path) -> int:
    import yaml

    config = yaml.safe_load((run / "config.yaml").read_text())
    return config.get("stop_after") or sum(stage["steps"] for stage in config["stages"])
