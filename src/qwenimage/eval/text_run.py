"""One `qwenimage eval text` run: images in, one score record per sample out, resumable.

Run folder:
    run.json            the settings and the command (a rerun on the folder must use the same settings; --n may grow)
    images/<id>.png     generated images (model and oracle modes; --images mode scores the given folder in place)
    records/<id>.json   per sample: prompt, expected texts, image path, OCR reading (lines, boxes), scores
    results.json, report.html   written at the end from all records (see report.py)

Images and records are written atomically (temporary file, then rename), so a killed run leaves only whole
files: a rerun skips samples that have a record, scores images that were generated but not yet scored,
and generates the rest.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol

from PIL import Image

from qwenimage.eval.metrics import SampleScore, score_sample
from qwenimage.eval.suites import SuiteSample
from qwenimage.images import ImageError, load_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
RUN_FILE = "run.json"


@dataclass
class TextEvalSettings:
    """What decides a run's numbers; recorded in run.json."""

    suites: list[str]
    source: str  # "model" | "images" | "oracle"
    model: str | None = None
    images: str | None = None
    split: str = "all"
    size: tuple[int, int] | None = None  # None: each sample's own size
    steps: int = 50
    cfg: float = 4.0
    seed: int = 0
    dtype: str = "bf16"
    template: str | None = None  # every prompt re-worded around its text (eval text --template)
    # how the model is loaded and sampled (cli/model_args.py); None: the defaults, so older run.json files match
    revision: str | None = None
    quantize: str | None = None
    scheduler: dict[str, object] | None = None
    cache_threshold: float | None = None

    def to_json(self) -> dict:
        return {**asdict(self), "size": list(self.size) if self.size else None}


class ImageMaker(Protocol):
    def __call__(self, samples: list[SuiteSample]) -> list[Image.Image]: ...


class Reader(Protocol):  # qwenimage.ocr.OcrEngine
    def read(self, image): ...


def write_json_atomic(path: Path, data: dict, indent: int | None = 1) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=indent), encoding="utf-8")
    os.replace(tmp, path)


def save_image_atomic(image: Image.Image, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    image.save(tmp, format="PNG")
    os.replace(tmp, path)


def start_run(out: Path, settings: TextEvalSettings, command: str, n: int | None) -> dict:
    """Create the run folder or check that it holds the same settings; returns run.json's content."""
    path = out / RUN_FILE
    current = {"settings": settings.to_json(), "command": command, "n": n}
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))["settings"]
        changed = sorted(k for k in set(previous) | set(current["settings"])
                         if previous.get(k) != current["settings"].get(k))
        if changed:
            diffs = ", ".join(f"{k}: {previous.get(k)!r} -> {current['settings'].get(k)!r}" for k in changed)
            raise ValueError(f"{out} holds a run with other settings ({diffs}); use another --out")
    (out / "records").mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    write_json_atomic(path, {**current, "updated": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return current


def find_images(folder: Path, samples: list[SuiteSample]) -> dict[str, Path]:
    """id -> image file in `folder` (id.png / .jpg / .jpeg / .webp); errors for an empty folder, missing ids
    and files that are not readable images."""
    if not folder.is_dir():
        raise ValueError(f"image folder not found: {folder}")
    by_stem = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}
    if not by_stem:
        raise ValueError(f"no images in {folder}: expected files named by sample id, e.g. {samples[0].id}.png")
    missing = [s.id for s in samples if s.id not in by_stem]
    if missing:
        raise ValueError(f"{len(missing)} of {len(samples)} sample ids have no image in {folder}: "
                         f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} (score fewer with --n)")
    found = {s.id: by_stem[s.id] for s in samples}
    for path in found.values():  # fail before any OCR time is spent
        try:
            with Image.open(path) as image:
                image.verify()
        except Exception as err:
            raise ImageError(f"cannot read image {path}: {err}") from None
    return found


def _record(sample: SuiteSample, image_path: Path, out: Path, reader: Reader, seconds: dict) -> dict:
    started = time.perf_counter()
    result = reader.read(load_image(image_path))
    seconds["ocr"] = round(time.perf_counter() - started, 3)
    score = score_sample(sample.texts, result.text)
    shown = os.path.relpath(image_path, out) if image_path.is_relative_to(out) else str(image_path.resolve())
    return {**sample.to_json(), "image": shown, "ocr": result.to_json(), "score": score.to_json(),
            "seconds": seconds}


def record_path(out: Path, sample: SuiteSample) -> Path:
    return out / "records" / f"{sample.id}.json"


def run_samples(samples: list[SuiteSample], out: Path, reader: Reader, *, generate: ImageMaker | None = None,
                images: dict[str, Path] | None = None, batch_size: int = 1,
                progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Score every sample without a record: from `images` (id -> file) or made by `generate` in batches.
    Returns how many samples were generated, scored and skipped (already had a record)."""
    todo = [s for s in samples if not record_path(out, s).is_file()]
    counts = {"skipped": len(samples) - len(todo), "generated": 0, "scored": 0}

    def finish(sample: SuiteSample, path: Path, seconds: dict) -> None:
        write_json_atomic(record_path(out, sample), _record(sample, path, out, reader, seconds), indent=None)
        counts["scored"] += 1
        if progress:
            progress(1)

    if images is not None:
        for sample in todo:
            finish(sample, images[sample.id], {})
        return counts
    made = {s.id: out / "images" / f"{s.id}.png" for s in todo}
    for sample in [s for s in todo if made[s.id].is_file()]:  # generated before an interruption, not scored
        finish(sample, made[sample.id], {})
    pending = [s for s in todo if not made[s.id].is_file()]
    for start in range(0, len(pending), batch_size):
        batch = pending[start:start + batch_size]
        started = time.perf_counter()
        pictures = generate(batch)
        each = round((time.perf_counter() - started) / len(batch), 3)
        for sample, picture in zip(batch, pictures):
            save_image_atomic(picture, made[sample.id])
            counts["generated"] += 1
            finish(sample, made[sample.id], {"generate": each})
    return counts


def load_records(out: Path, samples: list[SuiteSample]) -> list[dict]:
    """The records of `samples` (all must exist), in suite order."""
    records = []
    for sample in samples:
        path = record_path(out, sample)
        if not path.is_file():
            raise ValueError(f"no record for {sample.id} in {out}")
        records.append(json.loads(path.read_text(encoding="utf-8")))
    return records


def record_score(record: dict) -> SampleScore:
    return SampleScore.from_json(record["score"])
