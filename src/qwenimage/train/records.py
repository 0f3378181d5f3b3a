"""Training records: image (+ caption, rendered text, edit source, DPO loser) from folders, WebDataset tars or
curation's Parquet shards.

A source is a folder of images, one .tar or .parquet shard, or a folder of shards (the output folder of
`qwenimage synth`, or a `shards/stage-K/` folder of `qwenimage curate`; report/ and stats/ side folders are not
read). A Parquet shard has curation's columns (key, image, image_format, caption, json). A folder holds
images with sidecars of the same stem: `x.png` + `x.txt` (caption) and/or `x.json`
({"caption", "text", "instruction", "source", "lose"}; paths relative to the folder). A tar shard holds
`key.png|jpg` + `key.json` / `key.txt` (the synth engine's and curation's output layout); an edit pair adds
`key.source.png` and {"instruction"} in its json (synth's edit_pairs strategy): a TI2I record.

A sample that cannot be read (an image whose header Pillow cannot read, a sidecar that is not a JSON
object, a tar member that is no image, a shard cut short) is skipped, named in the log and counted, as
curation does; more of them than `data.max_bad_records` allows stops the run before any model loads.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from qwenimage.images import MAX_PIXELS, ImageError, load_image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
SHARD_SUFFIXES = (".tar", ".parquet")  # WebDataset tars (synth, curation) and curation's Parquet shards
SOURCE_EXT = "source.png"  # a tar member `key.source.png`: the edit source of `key.png` (synth's edit_pairs)


@dataclass(frozen=True)
class PackedImage:
    """A shard member's encoded image: the compressed bytes and the size read from its header. Records hold
    these rather than decoded pictures (a 256² RGB picture is ~196 KB decoded, ~10-60 KB as PNG), so reading
    32,000 edit pairs costs their file size in memory; the pixels are decoded when a sample is encoded."""

    data: bytes
    name: str  # `shard.tar:key.png`, for error messages
    size: tuple[int, int]  # (width, height)

    def open(self) -> Image.Image:
        try:
            return load_image(io.BytesIO(self.data))
        except ImageError as err:
            raise ImageError(f"{self.name}: {err}") from err


ImageRef = Image.Image | Path | PackedImage  # a picture in memory, a file, or a shard member's bytes


@dataclass
class Record:
    id: str
    image: ImageRef  # the target (DPO: the winner)
    caption: str
    text: str = ""  # text rendered in the image (from synth metadata or OCR), for curriculum selection
    instruction: str | None = None  # TI2I: the edit instruction ...
    source: ImageRef | None = None  # ... applied to this image
    lose: ImageRef | None = None  # DPO: the losing image for the same caption
    origin: str = ""  # the data source (folder or shard, as configured) the record was read from
    weight: float = 1.0  # sampling weight: curation's `sample_weight` (category balance x token rarity)

    def tasks(self) -> set[str]:
        """The training tasks this record can serve."""
        tasks = {"t2i", "i2i"} if self.caption else {"i2i"}
        if self.instruction and self.source is not None:
            tasks.add("ti2i")
        return tasks

    def text_kind(self, short_chars: int) -> str:
        """none | short | paragraph, from the rendered text."""
        text = self.text.strip()
        if not text:
            return "none"
        return "short" if len(text) <= short_chars and "\n" not in text else "paragraph"


def sample_weight(meta: dict, where: str = "") -> float:
    """The sampling weight in a sample's json (`sample_weight`, written by `qwenimage curate`; 1.0 if absent).
    A trainer that draws records in proportion to it sees the category shares curation aimed for."""
    value = meta.get("sample_weight", 1.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ValueError(f"{where or 'sample'}: sample_weight must be a finite number >= 0, got {value!r}")
    return float(value)


def open_record_image(source: ImageRef) -> Image.Image:
    if isinstance(source, PackedImage):
        return source.open()
    return source if isinstance(source, Image.Image) else load_image(source)


@dataclass(frozen=True)
class BadRecord:
    """A training sample left out: its file (or `shard.tar:member`) and why."""

    name: str
    reason: str


def read_records(sources: list[str | Path], max_bad: float = 0.05) -> list[Record]:
    """Every readable record of the sources; unreadable ones are skipped, named in the log and counted, and
    more than `max_bad` of them (a share of all records when < 1, a count when >= 1) is an error."""
    records, bad = read_sources(sources)
    check_bad_records(bad, len(records) + len(bad), max_bad)
    return records


def read_sources(sources: list[str | Path]) -> tuple[list[Record], list[BadRecord]]:
    records: list[Record] = []
    bad: list[BadRecord] = []
    for name in sources:
        source = Path(name)
        if source.is_dir() and shard_files(source):  # a synth / curation output folder: its shards
            found = [record for shard in shard_files(source) for record in _shard_records(shard, bad)]
        elif source.is_dir():
            found = _folder_records(source, bad)
        elif source.suffix in SHARD_SUFFIXES and source.is_file():
            found = _shard_records(source, bad)
        elif not source.exists():
            raise ValueError(f"training data source {source} does not exist")
        else:
            raise ValueError(f"training data source {source} is neither a folder nor a .tar / .parquet shard")
        records.extend(replace(record, origin=str(name)) for record in found)
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("training records have duplicate ids; give each source its own file names")
    return records, bad


def check_bad_records(bad: list[BadRecord], total: int, max_bad: float) -> None:
    """Name every skipped record in the log; raise when there are more than data.max_bad_records allows."""
    for record in bad:
        log.warning("skipping training record %s: %s", record.name, record.reason)
    if not bad:
        return
    limit = max_bad * total if max_bad < 1 else max_bad
    if len(bad) > limit:
        names = ", ".join(r.name for r in bad[:3]) + (", ..." if len(bad) > 3 else "")
        raise ValueError(f"{len(bad)} of {total} training records are unreadable, more than data.max_bad_records = "
                         f"{max_bad} allows: {names} (first: {bad[0].reason})")
    log.warning("skipped %d of %d training records as unreadable (data.max_bad_records = %s)", len(bad), total,
                max_bad)


def shard_files(folder: Path) -> list[Path]:
    """The shards of an output folder (synth-*.tar, curation's part-*.tar or part-*.parquet), when it has no
    loose images."""
    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in SHARD_SUFFIXES and p.is_file())


def _shard_records(path: Path, bad: list[BadRecord]) -> list[Record]:
    members = _parquet_members(path, bad) if path.suffix == ".parquet" else _tar_members(path, bad)
    out = []
    for key, parts in sorted(members.items()):
        image_ext = next((e for e in ("png", "jpg", "jpeg", "webp") if e in parts), None)
        if image_ext is None:
            continue
        try:
            out.append(_packed_record(path, key, parts, image_ext))
        except (ValueError, OSError) as err:
            bad.append(BadRecord(f"{path}:{key}.{image_ext}", str(err)))
    return out


def _parquet_members(path: Path, bad: list[BadRecord]) -> dict[str, dict[str, bytes]]:
    """key -> {extension: bytes} of a curation Parquet shard (columns key, image, image_format, caption, json);
    an unreadable file is one bad record."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path, columns=["key", "image", "image_format", "caption", "json"]).to_pylist()
    except (pa.ArrowException, OSError, KeyError) as err:
        bad.append(BadRecord(str(path), f"unreadable Parquet shard ({err})"))
        return {}
    return {row["key"]: {row["image_format"]: row["image"], "txt": row["caption"].encode("utf-8"),
                         "json": row["json"].encode("utf-8")} for row in rows}


def _folder_records(folder: Path, bad: list[BadRecord]) -> list[Record]:
    out = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            out.append(_folder_record(folder, path))
        except (ValueError, OSError) as err:
            bad.append(BadRecord(str(path), str(err)))
    return out


def _folder_record(folder: Path, path: Path) -> Record:
    sidecar = path.with_suffix(".json")
    meta = _parse_meta(sidecar.read_bytes(), str(sidecar)) if sidecar.is_file() else {}
    caption = meta.get("caption") or (path.with_suffix(".txt").read_text().strip()
                                      if path.with_suffix(".txt").is_file() else "")
    _header_size(path, str(path))
    source, lose = (_linked(folder, meta.get(k), sidecar) for k in ("source", "lose"))
    return Record(id=f"{folder.name}/{path.stem}", image=path, caption=caption, text=meta.get("text", ""),
                  instruction=meta.get("instruction"), source=source, lose=lose,
                  weight=sample_weight(meta, str(sidecar)))


def _parse_meta(data: bytes, where: str) -> dict:
    try:
        meta = json.loads(data)
    except ValueError as err:  # JSONDecodeError and bad UTF-8
        raise ValueError(f"{where}: not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(meta).__name__}")
    return meta


def _header_size(source: Path | io.BytesIO, where: str) -> tuple[int, int]:
    """Open an image (a file or a shard member's bytes) far enough to read its format and size (cheap: the pixels
    are decoded when a sample is encoded); ValueError naming `where` for anything unreadable or too large."""
    try:
        with Image.open(source) as image:
            width, height = image.size
    except UnidentifiedImageError:
        raise ValueError(f"{where}: not an image file (Pillow cannot identify it)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"{where}: unreadable image ({err})") from None
    if width * height > MAX_PIXELS:
        raise ValueError(f"{where}: {width}x{height} is more than the limit of {MAX_PIXELS:,} pixels")
    return width, height


def _linked(folder: Path, name: str | None, sidecar: Path) -> Path | None:
    """An edit source or DPO loser named in a sidecar; it must exist."""
    if not name:
        return None
    path = folder / name
    if not path.is_file():
        raise ValueError(f"{sidecar}: names {name}, which does not exist")
    return path


def _tar_members(path: Path, bad: list[BadRecord]) -> dict[str, dict[str, bytes]]:
    """key -> {extension: bytes}; a shard cut short keeps the members read so far (one bad record)."""
    groups: dict[str, dict[str, bytes]] = {}
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isfile():
                    key, _, ext = member.name.partition(".")
                    payload = tar.extractfile(member).read()
                    if len(payload) != member.size:  # tarfile reads short at a truncated end
                        raise tarfile.ReadError(f"{member.name} is cut short ({len(payload)} of {member.size} bytes)")
                    groups.setdefault(key, {})[ext] = payload
            end = tar.offset
        if not _ends_cleanly(path, end):  # tarfile stops quietly when a file is cut between two members
            raise tarfile.ReadError(f"no end-of-archive blocks after byte {end}")
    except (tarfile.TarError, OSError, EOFError) as err:
        bad.append(BadRecord(str(path), f"the shard breaks off after {len(groups)} samples ({err})"))
    return groups


def _ends_cleanly(path: Path, offset: int) -> bool:
    """A whole tar ends with two zero blocks of 512 bytes after its last member."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        tail = handle.read(1024)
    return len(tail) == 1024 and not any(tail)


def _packed_record(path: Path, key: str, parts: dict[str, bytes], image_ext: str) -> Record:
    """One sample of a shard; an edit pair (synth's edit_pairs) also has `key.source.png` and an instruction."""
    where = f"{path}:{key}"
    meta = _parse_meta(parts["json"], f"{where}.json") if "json" in parts else {}
    caption = meta.get("caption") or parts.get("txt", b"").decode("utf-8", errors="replace").strip()
    image = _packed_image(parts[image_ext], f"{where}.{image_ext}")
    source = _packed_image(parts[SOURCE_EXT], f"{where}.{SOURCE_EXT}") if SOURCE_EXT in parts else None
    if (source is None) != (meta.get("instruction") is None):
        raise ValueError(f"{where}: an edit pair needs both {key}.{SOURCE_EXT} and an instruction in its json")
    # the folder name too: two synth jobs both write synth-000000.tar with the same keys
    return Record(id=f"{path.parent.name}/{path.stem}/{key}", image=image, caption=caption,
                  text=meta.get("text", ""), instruction=meta.get("instruction"), source=source,
                  weight=sample_weight(meta, f"{where}.json"))


def _packed_image(data: bytes, where: str) -> PackedImage:
    """A shard member's image, checked as far as its header (format and size); decoded when encoded."""
    return PackedImage(data, where, _header_size(io.BytesIO(data), where))
