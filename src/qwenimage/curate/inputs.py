"""Inputs, split into work shards: image folders with sidecars, JSONL/CSV manifests, Parquet files,
WebDataset tars (img2dataset's layout) and the synth engine's `synth-*.tar` shards.

`plan_shards(paths, config)` lists every input once, in a fixed order, and cuts it into InputShards
(a tar is one shard; folders, manifests and Parquet files are cut every `input.shard_size` records).
`read_shard(shard)` gives the shard's records, the same ones on every call: work can be retried,
resumed or run anywhere that sees the same files.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qwenimage.curate import readers
from qwenimage.curate.config import InputConfig
from qwenimage.curate.readers import IMAGE_SUFFIXES
from qwenimage.curate.record import Record

MANIFEST_SUFFIXES = (".jsonl", ".csv", ".tsv")


@dataclass(frozen=True)
class InputShard:
    index: int
    kind: str  # folder | manifest | parquet | tar
    path: str  # the folder or file
    label: str  # prefix of the record ids: the input's name
    members: tuple[str, ...] = ()  # folder: image paths relative to `path`; parquet: row-group indices
    start: int = 0  # manifest: first row (0-based, header excluded)
    stop: int = 0  # manifest: row after the last
    synthetic: bool = False

    def to_json(self) -> dict:
        return {**asdict(self), "members": list(self.members)}

    @classmethod
    def from_json(cls, data: dict) -> InputShard:
        return cls(**{**data, "members": tuple(data.get("members", ()))})


@dataclass
class _Source:
    kind: str
    path: Path
    label: str = ""
    synthetic: bool = False
    members: list[str] = field(default_factory=list)


def _sources(paths: list[str | Path], config: InputConfig) -> list[_Source]:
    found: list[_Source] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            tars = sorted(path.glob("*.tar"))
            images = sorted(p.relative_to(path).as_posix() for p in path.rglob("*")
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if images or not tars:
                found.append(_Source("folder", path, members=images))
            found.extend(_Source("tar", tar) for tar in tars)
        elif path.suffix == ".tar":
            found.append(_Source("tar", path))
        elif path.suffix.lower() in MANIFEST_SUFFIXES:
            found.append(_Source("manifest", path))
        elif path.suffix.lower() == ".parquet":
            found.append(_Source("parquet", path))
        elif path.exists():
            raise ValueError(f"input {path}: not a folder, .tar, .jsonl/.csv/.tsv manifest or .parquet file")
        else:
            raise ValueError(f"input not found: {path}")
    for source in found:
        source.synthetic = source.kind == "tar" and fnmatch.fnmatch(source.path.name, config.synthetic_glob)
    return _label(found)


def _label(sources: list[_Source]) -> list[_Source]:
    """Record-id prefixes: the input's name; tars keep their folder's name too; repeats get ~2, ~3."""
    seen: dict[str, int] = {}
    for source in sources:
        name = f"{source.path.parent.name}/{source.path.stem}" if source.kind == "tar" else source.path.name
        seen[name] = seen.get(name, 0) + 1
        source.label = name if seen[name] == 1 else f"{name}~{seen[name]}"
    return sources


def plan_shards(paths: list[str | Path], config: InputConfig) -> list[InputShard]:
    shards: list[InputShard] = []
    for source in _sources(paths, config):
        common = dict(kind=source.kind, path=str(source.path), label=source.label, synthetic=source.synthetic)
        if source.kind == "tar":
            shards.append(InputShard(len(shards), **common))
        elif source.kind == "folder":
            for start in range(0, len(source.members), config.shard_size):
                members = tuple(source.members[start:start + config.shard_size])
                shards.append(InputShard(len(shards), members=members, **common))
        elif source.kind == "manifest":
            rows = readers.manifest_length(source.path)
            for start in range(0, rows, config.shard_size):
                shards.append(InputShard(len(shards), start=start, stop=min(rows, start + config.shard_size),
                                         **common))
        else:
            for groups in readers.parquet_row_group_chunks(source.path, config.shard_size):
                shards.append(InputShard(len(shards), members=tuple(map(str, groups)), **common))
    return shards


def read_shard(shard: InputShard) -> list[Record]:
    reader = {"folder": readers.read_folder, "manifest": readers.read_manifest, "parquet": readers.read_parquet,
              "tar": readers.read_tar}[shard.kind]
    return reader(shard)
