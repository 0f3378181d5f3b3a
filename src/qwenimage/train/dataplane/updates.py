"""Live data updates: where changes come from (a watched sources file, `request` calls), how every rank
learns the same decision (rank 0 decides, a broadcast tells the others), and the record of decisions.

The record, `<output.dir>/data-versions.json`, lists every version with the step it starts at; a resumed run
reads it and replays the same data sequence. The sources file is YAML: a list of sources, or a mapping
`{sources: [...], tasks: {t2i: 1.0, ti2i: 0.5}}` (no `tasks`: each stage's own mix).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import yaml

from qwenimage.train.dataplane.schedule import DataVersion

log = logging.getLogger(__name__)

VERSIONS_FILE = "data-versions.json"


def load_versions(output: Path) -> list[DataVersion]:
    path = Path(output) / VERSIONS_FILE
    return [DataVersion(**row) for row in json.loads(path.read_text())] if path.is_file() else []


def save_versions(output: Path, versions: list[DataVersion]) -> None:
    path = Path(output) / VERSIONS_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps([v.to_dict() for v in versions], indent=1))
    os.replace(tmp, path)


def read_sources_file(path: Path) -> dict:
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if isinstance(raw, list):
        raw = {"sources": raw}
    if not isinstance(raw, dict) or set(raw) - {"sources", "tasks"} or not isinstance(raw.get("sources"), list):
        raise ValueError(f"{path}: expected a list of sources or a mapping with sources (and tasks)")
    return {"sources": [str(s) for s in raw["sources"]], "tasks": raw.get("tasks")}


class DataUpdates:
    """Rank 0's view of requested changes; `poll` returns a change that differs from the latest version."""

    def __init__(self, sources_file: str = ""):
        self.path = Path(sources_file) if sources_file else None
        self.stamp: tuple[int, int] | None = None
        self.pending: dict = {}

    def request(self, sources: list[str] | None = None, tasks: dict[str, float] | None = None) -> None:
        """Ask for new sources and/or a new task mix (None: keep); applied at the next poll."""
        self.pending |= {k: v for k, v in (("sources", sources), ("tasks", tasks)) if v is not None}

    def poll(self, latest: DataVersion) -> dict | None:
        change, self.pending = self.pending, {}
        if not change:
            change = self._read_file() or {}
        wanted = {"sources": latest.sources, "tasks": latest.tasks} | change
        if not change or (list(wanted["sources"]), wanted["tasks"]) == (latest.sources, latest.tasks):
            return None
        return wanted

    def _read_file(self) -> dict | None:
        if self.path is None or not self.path.is_file():
            return None
        stat = self.path.stat()
        if (stat.st_mtime_ns, stat.st_size) == self.stamp:
            return None
        self.stamp = (stat.st_mtime_ns, stat.st_size)
        try:
            return read_sources_file(self.path)
        except (ValueError, yaml.YAMLError) as err:
            log.warning("ignoring the sources file: %s", err)
            return None


def broadcast_from_main(value):
    """Rank 0's value on every rank (unchanged in a single process)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
