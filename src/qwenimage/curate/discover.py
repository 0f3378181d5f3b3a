"""What an input path holds: the sources to read (image folders, manifests, Parquet files, tars, synth
shards) and the side folders that are deliberately not read.

A synth output folder (`qwenimage synth --out DIR`: `job.json`, shards, `stats/`, `report/`) is read
through its shards only: `synth-*.tar` (`input.synthetic_glob`), or the folder-format shards named like it
without `.tar`. Its report images (contact sheets, thumbnails) are never read as photos; every other
subfolder and loose file in it is skipped and counted (`Skipped`), so the funnel report shows what was left
out. A synth output folder met inside an image folder is treated the same way.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qwenimage.curate.config import InputConfig
from qwenimage.curate.readers import IMAGE_SUFFIXES

MANIFEST_SUFFIXES = (".jsonl", ".csv", ".tsv")
SYNTH_JOB_FILE = "job.json"  # what `qwenimage synth` writes first into its output folder
SYNTH_KNOWN = {"report": "synth report (contact sheets)", "stats": "synth per-shard statistics"}
SYNTH_FILES = {SYNTH_JOB_FILE, "summary.json"}


@dataclass
class Source:
    kind: str  # folder | manifest | parquet | tar
    path: Path
    label: str = ""
    synthetic: bool = False
    members: list[str] = field(default_factory=list)  # folder: image paths relative to `path`


@dataclass(frozen=True)
class Skipped:
    path: str  # the folder or file left out
    why: str
    files: int  # files under it

    def to_json(self) -> dict:
        return asdict(self)


def is_synth_output(folder: Path, config: InputConfig) -> bool:
    """A `qwenimage synth` output folder: its job file next to shards matching the synthetic glob."""
    return (folder / SYNTH_JOB_FILE).is_file() and any(_is_shard(p, config) for p in folder.iterdir())


def _is_shard(path: Path, config: InputConfig) -> bool:
    if path.is_file():
        return fnmatch.fnmatch(path.name, config.synthetic_glob)
    return path.is_dir() and fnmatch.fnmatch(path.name, config.synthetic_glob.removesuffix(".tar"))


def _count_files(path: Path) -> int:
    return 1 if path.is_file() else sum(len(files) for _, _, files in os.walk(path))


def synth_sources(folder: Path, config: InputConfig, skipped: list[Skipped]) -> list[Source]:
    """The shards of a synth output folder; everything else in it goes to `skipped` (job files aside)."""
    sources = []
    for path in sorted(folder.iterdir()):
        if _is_shard(path, config):
            members = [] if path.is_file() else sorted(p.name for p in path.iterdir()
                                                       if p.suffix.lower() in IMAGE_SUFFIXES)
            sources.append(Source("tar" if path.is_file() else "folder", path, synthetic=True, members=members))
        elif path.name not in SYNTH_FILES:
            why = SYNTH_KNOWN.get(path.name, "not a shard of the synth output folder") if path.is_dir() \
                else "loose file in a synth output folder"
            skipped.append(Skipped(str(path), why, _count_files(path)))
    return sources


def _dangling_image_link(path: Path) -> bool:
    """A symbolic link to a missing image file (its own name may lack the suffix): read as a rejected record."""
    return path.is_symlink() and not path.exists() and Path(os.readlink(path)).suffix.lower() in IMAGE_SUFFIXES


def folder_sources(folder: Path, config: InputConfig, skipped: list[Skipped]) -> list[Source]:
    """An input folder: its tars, or its images (recursively) with sidecars; synth output folders met on
    the way are read through their shards."""
    if is_synth_output(folder, config):
        return synth_sources(folder, config, skipped)
    images, nested = [], []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        for name in sorted(dirs):
            if is_synth_output(here / name, config):
                nested.extend(synth_sources(here / name, config, skipped))
        dirs[:] = sorted(d for d in dirs if not is_synth_output(here / d, config))
        images.extend((here / f).relative_to(folder).as_posix() for f in files
                      if Path(f).suffix.lower() in IMAGE_SUFFIXES or _dangling_image_link(here / f))
    tars = sorted(folder.glob("*.tar"))
    found = [Source("folder", folder, members=sorted(images))] if images or not (tars or nested) else []
    found += [Source("tar", tar, synthetic=fnmatch.fnmatch(tar.name, config.synthetic_glob)) for tar in tars]
    return found + nested


def discover(paths: list[str | Path], config: InputConfig) -> tuple[list[Source], list[Skipped]]:
    """Every source of the input paths, in a fixed order and labelled, and what was skipped."""
    found: list[Source] = []
    skipped: list[Skipped] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(folder_sources(path, config, skipped))
        elif path.suffix == ".tar":
            found.append(Source("tar", path, synthetic=fnmatch.fnmatch(path.name, config.synthetic_glob)))
        elif path.suffix.lower() in MANIFEST_SUFFIXES:
            found.append(Source("manifest", path))
        elif path.suffix.lower() == ".parquet":
            found.append(Source("parquet", path))
        elif path.exists():
            raise ValueError(f"input {path}: not a folder, .tar, .jsonl/.csv/.tsv manifest or .parquet file")
        else:
            raise ValueError(f"input not found: {path}")
    return _label(found), skipped


def _label(sources: list[Source]) -> list[Source]:
    """Record-id prefixes: the input's name; shards keep their folder's name too; repeats get ~2, ~3."""
    seen: dict[str, int] = {}
    for source in sources:
        shard = source.kind == "tar" or source.synthetic
        name = f"{source.path.parent.name}/{source.path.stem}" if shard else source.path.name
        seen[name] = seen.get(name, 0) + 1
        source.label = name if seen[name] == 1 else f"{name}~{seen[name]}"
    return sources
