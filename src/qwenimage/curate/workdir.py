"""The output folder: atomic writes, per-shard work files (the resume points) and the run identity.

    OUT/run.json                     what produced this folder (config without executor, inputs, version)
    OUT/config.yaml                  the resolved configuration
    OUT/work/plan.json               the input shards (and the skipped side folders), fixed at the first run
    OUT/work/scan/shard-NNNNNN.jsonl records after S1's per-record checks
    OUT/work/assess/shard-NNNNNN.jsonl  records after S2-S5 and S6's categories
    OUT/shards/stage-K/part-NNNNNN.tar|parquet  records that passed exactly K stages (K = 7: the final set)
    OUT/records/part-NNNNNN.jsonl    every record's outcome and scores
    OUT/report/funnel.json, OUT/report/index.html

Every file is written to `name.tmp` and renamed, so a killed run leaves whole files or `.tmp` leftovers
that the next run removes; a shard whose file exists is done.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from qwenimage import __version__
from qwenimage.curate.record import Record

TMP = ".tmp"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TMP)
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def dumps(data: Any, indent: int | None = None) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, indent=indent, default=_plain)


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (dumps(data, indent=1) + "\n").encode("utf-8"))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def records_text(records: Iterable[Record]) -> bytes:
    return "".join(dumps(r.to_json()) + "\n" for r in records).encode("utf-8")


def write_records(path: Path, records: Iterable[Record]) -> None:
    atomic_write_bytes(path, records_text(records))


def read_records(path: Path) -> list[Record]:
    with path.open(encoding="utf-8") as handle:
        return [Record.from_json(json.loads(line)) for line in handle if line.strip()]


class WorkDir:
    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.work = self.out / "work"

    def shard_file(self, phase: str, index: int) -> Path:
        return self.work / phase / f"shard-{index:06d}.jsonl"

    def done(self, phase: str, index: int) -> bool:
        return self.shard_file(phase, index).is_file()

    def remove_leftovers(self) -> int:
        """Delete `.tmp` files of a killed run; returns how many."""
        leftovers = [p for p in self.out.rglob(f"*{TMP}") if p.is_file()] if self.out.is_dir() else []
        for path in leftovers:
            path.unlink()
        return len(leftovers)

    def resuming(self, identity: dict, overwrite: bool) -> bool:
        """True if OUT holds an earlier run with this identity (same config and inputs) to resume; raises if it
        holds another run; with `overwrite`, clears an earlier run and returns False."""
        run_file = self.out / "run.json"
        if run_file.is_file() and not overwrite:
            if read_json(run_file).get("identity") != json.loads(dumps(identity)):
                raise ValueError(f"{self.out} holds a curation run with another configuration or other inputs; "
                                 "choose a new --out, or pass --overwrite to start over")
            return True
        if overwrite and self.out.exists():
            _clear(self.out)
        return False

    def claim(self, identity: dict) -> None:
        """Mark OUT as this run's (after its inputs were found readable)."""
        atomic_write_json(self.out / "run.json", {"identity": identity, "qwenimage": __version__})


def _clear(out: Path) -> None:
    """Remove what a previous run wrote (only our own names, never unknown files)."""
    import shutil

    for name in ("work", "shards", "records", "report"):
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    for name in ("run.json", "config.yaml", "summary.json"):
        if (out / name).is_file():
            (out / name).unlink()
