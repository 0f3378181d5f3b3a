"""Shards on disk: WebDataset tars (`synth-000000.tar` with `{key}.json/.png/.txt`) or plain folders.

A shard is written under a temporary name and renamed when complete, so a killed run leaves either a
whole shard or a `*.tmp` that the next run deletes. Tar members carry fixed metadata (mtime 0, uid/gid 0,
mode 0644, USTAR), so the same samples always give the same bytes.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path
from typing import Iterator

TMP_SUFFIX = ".tmp"
STATS_DIR = "stats"


def shard_path(out: Path, shard: int, fmt: str) -> Path:
    return out / (f"synth-{shard:06d}.tar" if fmt == "wds" else f"synth-{shard:06d}")


def stats_path(out: Path, shard: int) -> Path:
    return out / STATS_DIR / f"synth-{shard:06d}.json"


def dumps_json(data) -> bytes:
    """Canonical JSON bytes: sorted keys, UTF-8, no spaces after separators."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=_plain).encode("utf-8")


def _plain(value):
    """numpy scalars and arrays, tuples inside sets, paths: as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


def write_json_atomic(path: Path, data) -> None:
    tmp = path.with_name(path.name + TMP_SUFFIX)
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class ShardWriter:
    """Collects samples into a temporary tar or folder; `commit()` renames it into place."""

    def __init__(self, path: Path, fmt: str):
        self.path, self.fmt = path, fmt
        self.tmp = path.with_name(path.name + TMP_SUFFIX)
        _remove(self.tmp)
        if fmt == "wds":
            self._tar = tarfile.open(self.tmp, "w", format=tarfile.USTAR_FORMAT)
        else:
            self.tmp.mkdir(parents=True)
            self._tar = None

    def add(self, key: str, files: dict[str, bytes]) -> None:
        """Write one sample: `files` maps an extension ('png', 'json', 'txt') to its bytes."""
        for ext in sorted(files):
            name, data = f"{key}.{ext}", files[ext]
            if self._tar is None:
                (self.tmp / name).write_bytes(data)
                continue
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))

    def commit(self) -> None:
        if self._tar is not None:
            self._tar.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self._tar is not None:
            self._tar.close()
        _remove(self.tmp)


def read_keys(path: Path, fmt: str) -> list[str] | None:
    """The sample keys of a finished shard in order, or None when it is missing or unreadable."""
    try:
        if fmt == "folder":
            names = sorted(p.name for p in path.iterdir()) if path.is_dir() else None
        else:
            with tarfile.open(path, "r:") as tar:
                names = [member.name for member in tar.getmembers()]
    except (OSError, tarfile.TarError):
        return None
    if names is None:
        return None
    return list(dict.fromkeys(name.split(".", 1)[0] for name in names))


def iter_samples(path: Path, fmt: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {ext: bytes}) for every sample of a finished shard, in order."""
    if fmt == "folder":
        keys = read_keys(path, fmt) or []
        for key in keys:
            yield key, {p.name.split(".", 1)[1]: p.read_bytes() for p in sorted(path.glob(f"{key}.*"))}
        return
    key, files = None, {}
    with tarfile.open(path, "r:") as tar:
        for member in tar:
            member_key, ext = member.name.split(".", 1)
            if key is not None and member_key != key:
                yield key, files
                files = {}
            key, files[ext] = member_key, tar.extractfile(member).read()
    if key is not None:
        yield key, files


def remove_partials(out: Path) -> list[Path]:
    """Delete what a killed run left half-written (`*.tmp` files and folders); returns them."""
    leftovers = sorted([*out.glob("*" + TMP_SUFFIX), *out.glob(f"{STATS_DIR}/*{TMP_SUFFIX}")])
    for path in leftovers:
        _remove(path)
    return leftovers


def remove_shard(out: Path, shard: int, fmt: str) -> None:
    _remove(shard_path(out, shard, fmt))
    _remove(stats_path(out, shard))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
