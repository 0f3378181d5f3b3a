"""Training records: image (+ caption, rendered text, edit source, DPO loser) from folders or WebDataset tars.

A source is a folder of images, one .tar shard, or a folder of .tar shards (the output folder of
`qwenimage synth` or `qwenimage curate`; its report/ and stats/ side folders are not read). A folder holds
images with sidecars of the same stem: `x.png` + `x.txt` (caption) and/or `x.json`
({"caption", "text", "instruction", "source", "lose"}; paths relative to the folder). A tar shard holds
`key.png|jpg` + `key.json` / `key.txt` (the synth engine's and curation's output layout).
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from qwenimage.images import load_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass
class Record:
    id: str
    image: Image.Image | Path  # the target (DPO: the winner)
    caption: str
    text: str = ""  # text rendered in the image (from synth metadata or OCR), for curriculum selection
    instruction: str | None = None  # TI2I: the edit instruction ...
    source: Image.Image | Path | None = None  # ... applied to this image
    lose: Image.Image | Path | None = None  # DPO: the losing image for the same caption
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


def open_record_image(source: Image.Image | Path) -> Image.Image:
    return source if isinstance(source, Image.Image) else load_image(source)


def read_records(sources: list[str | Path]) -> list[Record]:
    records: list[Record] = []
    for name in sources:
        source = Path(name)
        if source.is_dir() and shard_files(source):  # a synth / curation output folder: its shards
            found = [record for shard in shard_files(source) for record in _tar_records(shard)]
        elif source.is_dir():
            found = _folder_records(source)
        elif source.suffix == ".tar":
            found = _tar_records(source)
        else:
            raise ValueError(f"training data source {source} is neither a folder nor a .tar shard")
        records.extend(replace(record, origin=str(name)) for record in found)
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("training records have duplicate ids; give each source its own file names")
    return records


def shard_files(folder: Path) -> list[Path]:
    """The WebDataset shards of an output folder (synth-*.tar, part-*.tar, ...), when it has no loose images."""
    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
        return []
    return sorted(p for p in folder.glob("*.tar") if p.is_file())


def _folder_records(folder: Path) -> list[Record]:
    out = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        meta = json.loads(path.with_suffix(".json").read_text()) if path.with_suffix(".json").is_file() else {}
        caption = meta.get("caption") or (path.with_suffix(".txt").read_text().strip()
                                          if path.with_suffix(".txt").is_file() else "")
        out.append(Record(id=f"{folder.name}/{path.stem}", image=path, caption=caption, text=meta.get("text", ""),
                          instruction=meta.get("instruction"),
                          source=folder / meta["source"] if meta.get("source") else None,
                          lose=folder / meta["lose"] if meta.get("lose") else None,
                          weight=sample_weight(meta, str(path.with_suffix(".json")))))
    return out


def _tar_records(path: Path) -> list[Record]:
    groups: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            if member.isfile():
                key, _, ext = member.name.partition(".")
                groups.setdefault(key, {})[ext] = tar.extractfile(member).read()
    out = []
    for key, parts in sorted(groups.items()):
        image_ext = next((e for e in ("png", "jpg", "jpeg", "webp") if e in parts), None)
        if image_ext is None:
            continue
        meta = json.loads(parts["json"]) if "json" in parts else {}
        caption = meta.get("caption") or parts.get("txt", b"").decode("utf-8").strip()
        image = load_image(Image.open(io.BytesIO(parts[image_ext])))
        # the folder name too: two synth jobs both write synth-000000.tar with the same keys
        out.append(Record(id=f"{path.parent.name}/{path.stem}/{key}", image=image, caption=caption,
                          text=meta.get("text", ""), weight=sample_weight(meta, f"{path}:{key}.json")))
    return out
