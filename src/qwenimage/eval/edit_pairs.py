"""Where `eval edit` finds its (source, edited[, mask]) pairs: a JSONL manifest or a folder convention.

Folder convention (any of .png .jpg .jpeg .webp):

    DIR/ID.source.png   the image given to the editor
    DIR/ID.edited.png   the editor's result
    DIR/ID.mask.png     optional: white = the region the edit may change

Manifest (DIR/pairs.jsonl, or any .jsonl file given directly), one pair a line; paths are relative to the
manifest's folder:

    {"id": "te-0000", "source": "te-0000.source.png", "edited": "te-0000.edited.png",
     "mask": "te-0000.mask.png", "new_text": "CLOSED", "region": [x0, y0, x1, y1], "instruction": "..."}

`mask`, `new_text` (the text the edit should write, read by OCR inside the region), `old_text`, `region`
(box in source pixels, x1/y1 exclusive; without it the mask's bounds) and `instruction` are optional.
A synth run's output folder (`qwenimage synth` with the edit_pairs strategy and `format: folder`: job.json and
synth-NNNNNN/KEY.png, KEY.source.png, KEY.json) is read as pairs too: the edited image, its source, and from the
sample's JSON the new and old text, the region and the instruction.

`edited_dir` replaces every pair's edited path by EDITED_DIR/ID.png (or ID.edited.png): another editor's
outputs for the same sources, scored against the same manifest; the manifest's edited image becomes the pair's
`target`, the ground truth that the editor's result is compared with inside the region.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

MANIFEST_NAME = "pairs.jsonl"
SYNTH_JOB = "job.json"  # what marks a synth run's output folder
SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
ROLES = ("source", "edited", "mask", "target")
_NAME = re.compile(r"^(?P<id>.+)\.(?P<role>source|edited|mask)\.(?P<ext>png|jpe?g|webp)$", re.IGNORECASE)
_OPTIONAL = ("new_text", "old_text", "instruction", "language")


@dataclass(frozen=True)
class EditPair:
    id: str
    source: Path
    edited: Path
    mask: Path | None = None
    new_text: str | None = None
    old_text: str | None = None
    region: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 in source pixels
    instruction: str | None = None
    language: str | None = None
    target: Path | None = None  # the ground-truth edit, when `edited` is another editor's result

    def with_edited(self, path: Path) -> EditPair:
        """This pair with another editor's result; what was the edited image becomes the ground truth."""
        return replace(self, edited=path, target=self.target or self.edited)


def read_pairs(spec: str | Path, edited_dir: str | Path | None = None) -> list[EditPair]:
    """Pairs from a manifest file, a folder holding pairs.jsonl, or a folder following the file convention."""
    path = Path(spec)
    if path.is_file():
        pairs = read_manifest(path)
    elif path.is_dir() and (path / SYNTH_JOB).is_file():
        pairs = read_synth_pairs(path)
    elif path.is_dir():
        pairs = read_manifest(path / MANIFEST_NAME) if (path / MANIFEST_NAME).is_file() else read_folder(path)
    else:
        raise ValueError(f"--pairs {spec}: no such folder or manifest file")
    if edited_dir is not None:
        pairs = [pair.with_edited(_edited_in(Path(edited_dir), pair.id)) for pair in pairs]
    for pair in pairs:
        for role in ROLES:
            file = getattr(pair, role)
            if file is not None and not file.is_file():
                raise ValueError(f"pair {pair.id!r}: {role} image {file} not found")
    return pairs


def read_folder(folder: Path) -> list[EditPair]:
    found: dict[str, dict[str, Path]] = {}
    for file in sorted(folder.iterdir()):
        match = _NAME.match(file.name)
        if match and file.is_file():
            roles = found.setdefault(match["id"], {})
            role = match["role"].lower()
            if role in roles:
                raise ValueError(f"pair {match['id']!r}: two {role} images ({roles[role].name}, {file.name})")
            roles[role] = file
    if not found:
        raise ValueError(f"--pairs {folder}: no ID.source.png / ID.edited.png files and no {MANIFEST_NAME}")
    for pair_id, roles in found.items():
        missing = [role for role in ("source", "edited") if role not in roles]
        if missing:
            raise ValueError(f"pair {pair_id!r} in {folder} is unpaired: no {missing[0]} image "
                             f"(expected {pair_id}.{missing[0]}.png)")
    return [EditPair(pair_id, roles["source"], roles["edited"], roles.get("mask")) for pair_id, roles in found.items()]


def read_synth_pairs(folder: Path) -> list[EditPair]:
    """The edit pairs of a synth run written with `format: folder` (finished shards only, in key order)."""
    if any(folder.glob("synth-*.tar")):
        raise ValueError(f"--pairs {folder}: a synth run in WebDataset shards; write edit pairs for scoring with "
                         "format: folder (qwenimage synth ... format=folder)")
    pairs = []
    for shard in sorted(p for p in folder.glob("synth-*") if p.is_dir() and not p.name.endswith(".tmp")):
        for meta_path in sorted(shard.glob("*.json")):
            where = str(meta_path)
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as err:
                raise ValueError(f"{where}: unreadable sample metadata ({err})") from err
            extra = meta.get("extra") or {}
            if "instruction" not in meta or "region" not in extra:
                raise ValueError(f"{where}: not an edit pair (no instruction or region): was it written by the "
                                 "edit_pairs strategy?")
            key = meta_path.name.removesuffix(".json")
            row = {"id": key, "source": f"{key}.source.png", "edited": f"{key}.png", "region": extra["region"],
                   "instruction": meta["instruction"], "language": meta.get("language"),
                   "new_text": extra.get("new_text"), "old_text": extra.get("old_text")}
            pairs.append(_pair_from_row(row, shard, where))
    if not pairs:
        raise ValueError(f"--pairs {folder}: a synth folder with no finished shard of edit pairs")
    return pairs


def read_manifest(path: Path) -> list[EditPair]:
    pairs, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from err
        pair = _pair_from_row(row, path.parent, f"{path}:{number}")
        if pair.id in seen:
            raise ValueError(f"{path}:{number}: duplicate pair id {pair.id!r}")
        seen.add(pair.id)
        pairs.append(pair)
    if not pairs:
        raise ValueError(f"{path}: the manifest lists no pairs")
    return pairs


def _pair_from_row(row, root: Path, where: str) -> EditPair:
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for key in ("id", "source", "edited"):
        if not isinstance(row.get(key), str) or not row[key]:
            raise ValueError(f"{where}: missing or empty {key!r}")
    region = row.get("region")
    if region is not None:
        if not (isinstance(region, list) and len(region) == 4 and all(isinstance(v, int) for v in region)
                and region[0] < region[2] and region[1] < region[3]):
            raise ValueError(f"{where}: region {region} must be [x0, y0, x1, y1] integers with x0 < x1, y0 < y1")
        region = tuple(region)
    mask = root / row["mask"] if row.get("mask") else None
    extras = {key: row[key] for key in _OPTIONAL if row.get(key) is not None}
    return EditPair(str(row["id"]), root / row["source"], root / row["edited"], mask, region=region, **extras)


def _edited_in(folder: Path, pair_id: str) -> Path:
    for name in (pair_id, f"{pair_id}.edited"):
        for suffix in SUFFIXES:
            if (folder / f"{name}{suffix}").is_file():
                return folder / f"{name}{suffix}"
    raise ValueError(f"pair {pair_id!r}: no edited image {folder / pair_id}.png in --edited {folder}")
