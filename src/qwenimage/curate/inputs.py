"""Inputs, split into work shards: image folders with sidecars, JSONL/CSV manifests, Parquet files,
WebDataset tars (img2dataset's layout) and the synth engine's `synth-*.tar` shards.

`plan_inputs(paths, config)` lists every input once, in a fixed order (`curate.discover`: synth output
folders are read through their shards, their reports skipped and counted), and cuts it into InputShards
(a tar is one shard; folders, manifests and Parquet files are cut every `input.shard_size` records).
`read_shard(shard)` gives the shard's records, the same ones on every call: work can be retried,
resumed or run anywhere that sees the same files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from qwenimage.curate import readers
from qwenimage.curate.config import InputConfig
from qwenimage.curate.discover import Skipped, discover
from qwenimage.curate.record import Record


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
class InputPlan:
    shards: list[InputShard]
    skipped: list[Skipped]  # side folders and files deliberately not read (synth reports, ...)

    def to_json(self) -> dict:
        return {"shards": [s.to_json() for s in self.shards], "skipped": [s.to_json() for s in self.skipped]}

    @classmethod
    def from_json(cls, data: dict) -> InputPlan:
        return cls([InputShard.from_json(s) for s in data["shards"]], [Skipped(**s) for s in data["skipped"]])


def plan_shards(paths: list[str | Path], config: InputConfig) -> list[InputShard]:
    return plan_inputs(paths, config).shards


def plan_inputs(paths: list[str | Path], config: InputConfig) -> InputPlan:
    shards: list[InputShard] = []
    sources, skipped = discover(paths, config)
    for source in sources:
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
    return InputPlan(shards, skipped)


def read_shard(shard: InputShard) -> list[Record]:
    reader = {"folder": readers.read_folder, "manifest": readers.read_manifest, "parquet": readers.read_parquet,
              "tar": readers.read_tar}[shard.kind]
    return reader(shard)
