"""Reading one work shard of each input kind into records (see `inputs` for the layouts).

A problem with one item (unreadable sidecar, missing image) stays with that item's record; a tar that
breaks off midway yields the records read so far plus one rejected record naming the damage.
"""

from __future__ import annotations

import csv
import json
import os
import tarfile
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from qwenimage.curate.record import SYNTHETIC, WEB, Caption, Record

if TYPE_CHECKING:
    from qwenimage.curate.inputs import InputShard

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
IMAGE_KEYS = ("image", "image_path", "path", "file", "filepath", "file_name", "filename", "jpg", "png")
CAPTION_KEYS = ("caption", "text", "TEXT", "prompt")
ID_KEYS = ("id", "key", "uid")


def _captions(text: Any) -> list[Caption]:
    return [Caption(text.strip(), "raw")] if isinstance(text, str) and text.strip() else []


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return {"sidecar_error": f"{path.name}: {err}"}
    return data if isinstance(data, dict) else {"sidecar_error": f"{path.name}: not a JSON object"}


def read_folder(shard: InputShard) -> list[Record]:
    """Images with optional sidecars of the same stem: `x.txt` (caption) and `x.json` (metadata); a synth
    folder-format shard is the same layout, its records synthetic."""
    root, records = Path(shard.path), []
    for relative in shard.members:
        path = root / relative
        if path.is_symlink() and not path.exists():
            records.append(_dangling(shard, relative, path))
            continue
        meta = _read_json(path.with_suffix(".json")) if path.with_suffix(".json").is_file() else {}
        caption = path.with_suffix(".txt").read_text(encoding="utf-8", errors="replace") \
            if path.with_suffix(".txt").is_file() else meta.get("caption")
        records.append(Record(id=f"{shard.label}/{relative}", source=shard.path, image_path=str(path),
                              kind=SYNTHETIC if shard.synthetic else WEB, captions=_captions(caption), metadata=meta))
    return records


def _dangling(shard: InputShard, relative: str, path: Path) -> Record:
    """A symbolic link whose target is gone: a rejected record naming both, not a silent gap."""
    record = Record(id=f"{shard.label}/{relative}", source=shard.path, image_path=str(path),
                    kind=SYNTHETIC if shard.synthetic else WEB)
    record.reject("s1", "dangling_symlink", f"{path} links to {os.readlink(path)}, which does not exist"[:300])
    return record


def _manifest_rows(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix.lower() == ".jsonl":
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except ValueError as err:
                        row = {"manifest_error": f"line {number}: {err}"}
                    yield row if isinstance(row, dict) else {"manifest_error": f"line {number}: not an object"}
        else:
            yield from csv.DictReader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")


def manifest_length(path: Path) -> int:
    return sum(1 for _ in _manifest_rows(path))


def _row_record(shard: InputShard, row: dict, number: int, base: Path) -> Record:
    """A manifest or Parquet row: image bytes, or a path (relative to the manifest), caption, metadata."""
    key = next((str(row[k]) for k in ID_KEYS if row.get(k) not in (None, "")), f"row{number:09d}")
    image = next((row[k] for k in IMAGE_KEYS if row.get(k) not in (None, "")), None)
    if isinstance(image, dict):  # Hugging Face datasets' Image feature: {"bytes", "path"}
        image = image.get("bytes") or image.get("path")
    record = Record(id=f"{shard.label}/{key}", source=shard.path,
                    captions=_captions(next((row[k] for k in CAPTION_KEYS if row.get(k)), None)),
                    metadata={k: v for k, v in row.items() if k not in IMAGE_KEYS and _plain(v)})
    if isinstance(image, (bytes, bytearray)):
        record.image_bytes = bytes(image)
    elif isinstance(image, str):
        record.image_path = str(base / image)
    return record


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, list, dict))


def read_manifest(shard: InputShard) -> list[Record]:
    path = Path(shard.path)
    rows = islice(_manifest_rows(path), shard.start, shard.stop)
    return [_row_record(shard, row, shard.start + i, path.parent) for i, row in enumerate(rows)]


def parquet_row_group_chunks(path: Path, shard_size: int) -> list[list[int]]:
    """Row groups of a Parquet file, grouped into chunks of about `shard_size` rows."""
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(path).metadata
    chunks, current, rows = [], [], 0
    for index in range(metadata.num_row_groups):
        current.append(index)
        rows += metadata.row_group(index).num_rows
        if rows >= shard_size:
            chunks.append(current)
            current, rows = [], 0
    return chunks + ([current] if current else [])


def read_parquet(shard: InputShard) -> list[Record]:
    import pyarrow.parquet as pq

    handle = pq.ParquetFile(shard.path)
    groups = [int(g) for g in shard.members]
    first = sum(handle.metadata.row_group(i).num_rows for i in range(groups[0])) if groups else 0
    rows = handle.read_row_groups(groups).to_pylist() if groups else []
    base = Path(shard.path).parent
    return [_row_record(shard, row, first + i, base) for i, row in enumerate(rows)]


def _tar_groups(path: Path) -> tuple[dict[str, dict[str, bytes]], str | None]:
    """key -> {extension: bytes} in member order, and the error that cut the tar short (if any)."""
    groups: dict[str, dict[str, bytes]] = {}
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                if not member.isfile():
                    continue
                folder, _, name = member.name.rpartition("/")
                stem, _, extension = name.partition(".")
                key = f"{folder}/{stem}" if folder else stem
                payload = tar.extractfile(member).read()
                if len(payload) != member.size:  # tarfile returns short reads at a truncated end
                    raise tarfile.ReadError(f"{member.name} is cut short ({len(payload)} of {member.size} bytes)")
                groups.setdefault(key, {})[extension.lower()] = payload
    except (tarfile.TarError, OSError, EOFError) as err:
        return groups, f"{type(err).__name__}: {err}"
    return groups, None


def _tar_record(shard: InputShard, key: str, parts: dict[str, bytes]) -> Record | None:
    image_ext = next((e for e in ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif") if e in parts), None)
    if image_ext is None:
        return None
    meta = {}
    if "json" in parts:
        try:
            meta = json.loads(parts["json"])
        except ValueError as err:
            meta = {"sidecar_error": f"{key}.json: {err}"}
    caption = meta.get("caption") if isinstance(meta, dict) else None
    if not caption and "txt" in parts:
        caption = parts["txt"].decode("utf-8", errors="replace")
    return Record(id=f"{shard.label}/{key}", source=shard.path, kind=SYNTHETIC if shard.synthetic else WEB,
                  image_bytes=parts[image_ext], member=f"{key}.{image_ext}", captions=_captions(caption),
                  metadata=meta if isinstance(meta, dict) else {})


def read_tar(shard: InputShard) -> list[Record]:
    """A WebDataset tar: members grouped by key (`key.jpg`, `key.txt`, `key.json`, ...)."""
    groups, error = _tar_groups(Path(shard.path))
    records = [r for key, parts in groups.items() if (r := _tar_record(shard, key, parts)) is not None]
    if error:
        broken = Record(id=f"{shard.label}/#unreadable-tail", source=shard.path)
        broken.reject("s1", "broken_file", f"the tar breaks off after {len(groups)} samples: {error}"[:300])
        records.append(broken)
    return records
