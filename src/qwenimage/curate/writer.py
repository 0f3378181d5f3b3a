"""Output shards: the records that passed at least `output.min_stage` stages, grouped by how many they
passed (`shards/stage-K/`: a trainer for stage k reads stage-k .. stage-7), as WebDataset tars
(`key.jpg|png|webp`, `key.txt`, `key.json`) or Parquet; and `records/part-N.jsonl` with every record's
outcome. Files are byte-identical for the same records (fixed tar metadata, sorted JSON keys).

`key.json`'s `sample_weight` is the record's sampling weight (S6 balance weight x S7 token weight): a
trainer that samples records in proportion to it sees the target category shares (`qwenimage.train.records`
reads it as `Record.weight`). With s6.mode=upsample a record may be written several times (`repeat`).

Images are copied as they are when they are upright 8-bit RGB/grey JPEG, PNG or WebP; anything else (CMYK,
16-bit, alpha, EXIF-rotated, other formats) is converted with the project's RGB policy and re-encoded (PNG
for lossless sources, JPEG q95 otherwise).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from PIL import Image

from qwenimage.curate.config import CurateConfig
from qwenimage.curate.decode import EXIF_ORIENTATION, PLAIN_FORMATS, decode, encode_rgb
from qwenimage.curate.record import Record
from qwenimage.curate.workdir import atomic_write_bytes, dumps, records_text

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
LOSSLESS = {"PNG", "TIFF", "BMP", "GIF"}


def output_image(data: bytes, max_pixels: int) -> tuple[bytes, str]:
    """(bytes, extension) to write: the file itself when plain, else converted pixels."""
    with Image.open(io.BytesIO(data)) as image:
        fmt, mode = image.format, image.mode
        orientation = int(image.getexif().get(EXIF_ORIENTATION, 1) or 1)
    if fmt in PLAIN_FORMATS and mode in ("RGB", "L") and orientation == 1:
        return data, EXTENSIONS[fmt]
    return encode_rgb(decode(data, max_pixels).rgb, lossless=fmt in LOSSLESS)


def sample_json(record: Record) -> dict:
    """The `key.json` of an output sample: what a trainer needs first, then every score."""
    labels, chosen = record.labels, record.chosen_caption()
    return {
        "id": record.id, "source": record.source, "kind": record.kind,
        "caption": chosen.text if chosen else "", "caption_source": chosen.source if chosen else None,
        "captions": [{"text": c.text, "source": c.source} for c in record.captions],
        "text": labels.get("text", ""), "language": labels.get("language"),
        "category": labels.get("category"), "subcategory": labels.get("subcategory"),
        "stage_passed": record.stage_passed, "buckets": labels.get("buckets", {}),
        "sample_weight": labels.get("sample_weight", 1.0), "repeat": labels.get("repeat", 1),
        "size": labels.get("size"),
        "scores": record.scores, "labels": {k: v for k, v in labels.items() if k not in ("text",)},
        "metadata": record.metadata,
        "rejection": None if record.rejection is None else vars(record.rejection),
    }


def _tar_bytes(samples: list[tuple[str, dict[str, bytes]]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for key, files in samples:
            for extension in sorted(files):
                info = tarfile.TarInfo(f"{key}.{extension}")
                info.size, info.mtime, info.mode, info.uid, info.gid = len(files[extension]), 0, 0o644, 0, 0
                tar.addfile(info, io.BytesIO(files[extension]))
    return buffer.getvalue()


def _parquet_bytes(samples: list[tuple[str, dict[str, bytes]]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    image_ext = [next(e for e in files if e not in ("txt", "json")) for _, files in samples]
    table = pa.table({
        "key": [key for key, _ in samples],
        "image": [files[e] for (_, files), e in zip(samples, image_ext)],
        "image_format": image_ext,
        "caption": [files["txt"].decode("utf-8") for _, files in samples],
        "json": [files["json"].decode("utf-8") for _, files in samples],
    })
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _samples(record: Record, max_pixels: int) -> list[tuple[str, dict[str, bytes]]] | None:
    """The record's output sample, and its extra copies when S6 upsampled it (keys `key-r1`, `key-r2`, ...,
    json `copy` 1, 2, ...); None when its image cannot be read any more."""
    try:
        image, extension = output_image(record.read_bytes(), max_pixels)
    except (ValueError, OSError):  # the file changed or vanished since it was assessed
        return None
    meta = sample_json(record)
    samples = []
    for copy in range(max(1, int(record.labels.get("repeat", 1)))):
        key = record.key if copy == 0 else f"{record.key}-r{copy}"
        samples.append((key, {extension: image, "txt": meta["caption"].encode("utf-8"),
                              "json": dumps({**meta, "copy": copy}).encode("utf-8")}))
    return samples


def write_shard_outputs(out: str | Path, index: int, records: list[Record], config: CurateConfig) -> dict:
    """Write shard `index`'s output files; returns the number of samples (copies included) written per
    stage_passed."""
    out = Path(out)
    groups: dict[int, list[tuple[str, dict[str, bytes]]]] = {}
    missing = 0
    for record in records:
        if record.stage_passed >= config.output.min_stage:
            samples = _samples(record, config.s1.max_pixels)
            missing += samples is None
            groups.setdefault(record.stage_passed, []).extend(samples or [])
    fmt = config.output.format
    for stage, samples in sorted(groups.items()):
        name = f"part-{index:06d}." + ("tar" if fmt == "webdataset" else "parquet")
        data = _tar_bytes(samples) if fmt == "webdataset" else _parquet_bytes(samples)
        atomic_write_bytes(out / "shards" / f"stage-{stage}" / name, data)
    for record in records:
        record.thumbnail = None
    atomic_write_bytes(out / "records" / f"part-{index:06d}.jsonl", records_text(records))
    return {"written": {str(k): len(v) for k, v in groups.items()}, "missing": missing}
