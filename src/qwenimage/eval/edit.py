"""Edit consistency: how much an edit changed outside its region, and whether it wrote the requested text.

Per pair (source, edited[, mask]; see edit_pairs.py for where pairs come from):
- PSNR, SSIM and mean CIEDE2000 ΔE between the source and the edited image outside the region (the mask;
  no mask and no region box = the whole image). The edited image with the region's pixels put back from the
  source is compared, so what the edit drew inside the region cannot leak into SSIM's windows.
- the global shift (dx, dy) of the edited image outside the region, by sub-pixel phase correlation
  (image_metrics.phase_shift, with the region weighted out);
- for pairs with `new_text`: OCR of the edited image cropped to the region (plus a margin), scored against
  the new text: exact match after qwenimage.ocr.normalize_text, and 1 - NED (text_agreement);
- for pairs with a ground-truth edit (`target`: a manifest's edited image when another editor's results are
  scored): PSNR and mean ΔE between the edit and the ground truth inside the region, which see what OCR does not:
  the ink's colour, the letters' font and place, the background behind them.

An edited image of another size than its source is resized to it (Lanczos) and its record says so; a mask
of another size is an error. Summaries: pooled PSNR and means, with bootstrap 95% intervals (pair_report).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from qwenimage.eval import image_metrics as im
from qwenimage.eval.edit_pairs import EditPair
from qwenimage.eval.pair_report import (Metric, format_summary as format_lines, image_uri, record_table, summarize,
                                        summary_section, write_html, write_json)
from qwenimage.images import load_image

EDIT_METRICS = (
    Metric("psnr", "PSNR outside the region (dB)", True, pooled_psnr=True),
    Metric("ssim", "SSIM outside the region", True, unit_range=True, short="SSIM"),
    Metric("delta_e", "mean ΔE (CIEDE2000) outside the region", False),
    Metric("shift", "global shift (px)", False),
    Metric("ocr_exact", "new text read exactly in the region", True, unit_range=True, short="OCR exact"),
    Metric("ocr_agreement", "new text 1 - NED in the region", True, unit_range=True, short="OCR 1 - NED"),
    Metric("target_psnr", "PSNR to the ground truth inside the region (dB)", True, pooled_psnr=True,
           pooled_from=("target_sse", "target_count")),
    Metric("target_delta_e", "mean ΔE to the ground truth inside the region", False),
)
COLUMNS = [("psnr", "PSNR"), ("ssim", "SSIM"), ("delta_e", "ΔE"), ("shift_dx", "dx"), ("shift_dy", "dy"),
           ("new_text", "new text"), ("ocr_reading", "OCR in region"), ("ocr_agreement", "1 - NED"),
           ("target_psnr", "PSNR to truth"), ("target_delta_e", "ΔE to truth")]
DIFF_GAIN = 4  # the difference thumbnail shows |edited - source| x 4


@dataclass
class LoadedPair:
    pair: EditPair
    source: np.ndarray  # [H, W, 3] uint8
    edited: np.ndarray  # [H, W, 3] uint8, resized to the source's size when it had another
    region: np.ndarray | None  # [H, W] bool, True = the edit may change it
    box: tuple[int, int, int, int] | None  # the region's bounds (x0, y0, x1, y1), for OCR
    edited_size: tuple[int, int]  # (w, h) as read
    target: np.ndarray | None = None  # [H, W, 3] uint8, the ground-truth edit


def _same_size(pair: EditPair, path: Path, role: str, source: Image.Image) -> Image.Image:
    """The image at `path`, which must have the source's size (a mask or a ground truth is never resized)."""
    image = load_image(path)
    if image.size != source.size:
        raise ValueError(f"pair {pair.id!r}: {role} {path} is {image.width}x{image.height}, "
                         f"the source is {source.width}x{source.height}")
    return image


def load_pair(pair: EditPair) -> LoadedPair:
    """Read the images (one-line errors for unreadable files and mismatched masks)."""
    source, edited = load_image(pair.source), load_image(pair.edited)
    edited_size = edited.size
    if edited.size != source.size:
        edited = edited.resize(source.size, Image.Resampling.LANCZOS)
    region = None if pair.mask is None else im.mask_to_region(_same_size(pair, pair.mask, "mask", source))
    box = pair.region
    if box is not None:
        x0, y0, x1, y1 = box
        if min(x0, y0) < 0 or x1 > source.width or y1 > source.height:
            raise ValueError(f"pair {pair.id!r}: region {list(box)} exceeds the {source.width}x{source.height} source")
        if region is None:
            region = np.zeros((source.height, source.width), bool)
            region[y0:y1, x0:x1] = True
    elif region is not None and region.any():
        ys, xs = np.nonzero(region)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    target = None if pair.target is None else np.asarray(_same_size(pair, pair.target, "ground truth", source))
    return LoadedPair(pair, np.asarray(source), np.asarray(edited), region, box, edited_size, target)


def ocr_crop(loaded: LoadedPair) -> Image.Image:
    """The edited image inside the region's box plus a margin of its height (at least 16 px) on each side: OCR's
    detector misses a line cropped much tighter (a 71-px region whose 'sale' fills it: read with a margin of half its
    height or more, missed with a quarter)."""
    image = Image.fromarray(loaded.edited)
    if loaded.box is None:
        return image
    x0, y0, x1, y1 = loaded.box
    margin = max(16, y1 - y0)
    return image.crop((max(0, x0 - margin), max(0, y0 - margin), min(image.width, x1 + margin),
                       min(image.height, y1 + margin)))


def score_loaded(loaded: LoadedPair, ocr=None) -> dict:
    """One record: metric values (None with a reason when a metric does not apply)."""
    from qwenimage.ocr import normalize_text, text_agreement

    pair, reasons = loaded.pair, {}
    keep = None if loaded.region is None else ~loaded.region
    kept = loaded.edited if loaded.region is None else im.outside_only(loaded.source, loaded.edited, loaded.region)
    error = im.squared_error(loaded.source, kept, keep)
    record = {"id": pair.id, "source": str(pair.source), "edited": str(pair.edited),
              "mask": None if pair.mask is None else str(pair.mask), "region_box": loaded.box,
              "region_fraction": 0.0 if loaded.region is None else float(loaded.region.mean()),
              "sse": error.total, "count": error.count, "psnr": error.psnr,
              "ssim": im.ssim(loaded.source, kept, keep), "delta_e": im.delta_e(loaded.source, kept, keep)}
    if error.count == 0:
        for key in ("psnr", "ssim", "delta_e"):
            record[key], reasons[key] = None, "the region covers the whole image"
    elif math.isnan(record["ssim"]):
        record["ssim"], reasons["ssim"] = None, "no pixel outside the region away from the 5-pixel border"
    shift = im.phase_shift(loaded.source, loaded.edited, keep)
    record.update(shift_dx=float(shift.dx), shift_dy=float(shift.dy), shift=float(shift.magnitude),
                  shift_peak=float(shift.peak))
    if tuple(loaded.edited_size) != loaded.source.shape[1::-1]:
        record["resized_from"] = list(loaded.edited_size)
    record.update(new_text=pair.new_text, ocr_reading=None, ocr_exact=None, ocr_agreement=None)
    if pair.new_text is None:
        reasons["ocr_exact"] = reasons["ocr_agreement"] = "no new_text for this pair"
    elif ocr is not None:
        reading = ocr.read(ocr_crop(loaded)).text
        record.update(ocr_reading=reading, ocr_exact=float(normalize_text(reading) == normalize_text(pair.new_text)),
                      ocr_agreement=text_agreement(pair.new_text, reading))
    else:
        reasons["ocr_exact"] = reasons["ocr_agreement"] = "OCR turned off"
    record.update(_target_scores(loaded, reasons))
    record["reasons"] = reasons
    return record


def _target_scores(loaded: LoadedPair, reasons: dict) -> dict:
    """The edit against the ground truth inside the region (None with a reason where there is none)."""
    keys = ("target_psnr", "target_delta_e")
    if loaded.target is None or loaded.region is None or not loaded.region.any():
        reasons.update(dict.fromkeys(keys, "no ground truth" if loaded.target is None else "no region"))
        return dict.fromkeys(keys)
    error = im.squared_error(loaded.target, loaded.edited, loaded.region)
    return {"target_sse": error.total, "target_count": error.count, "target_psnr": error.psnr,
            "target_delta_e": im.delta_e(loaded.target, loaded.edited, loaded.region)}


def pair_thumbnails(loaded: LoadedPair) -> list[tuple[str, str]]:
    """(caption, data URI) for the source, the edited image, |edited - source| x 4 with the region boxed, and the
    ground truth where there is one."""
    diff = np.abs(loaded.edited.astype(np.int16) - loaded.source.astype(np.int16)) * DIFF_GAIN     # [H, W, 3]
    diff_image = Image.fromarray(np.clip(diff, 0, 255).astype(np.uint8))
    if loaded.box is not None:
        ImageDraw.Draw(diff_image).rectangle([loaded.box[0], loaded.box[1], loaded.box[2] - 1, loaded.box[3] - 1],
                                             outline=(255, 60, 60), width=max(1, diff_image.width // 160))
    return [("source", image_uri(Image.fromarray(loaded.source))),
            ("edited", image_uri(Image.fromarray(loaded.edited))),
            (f"|diff| x{DIFF_GAIN}", image_uri(diff_image))] + (
        [] if loaded.target is None else [("ground truth", image_uri(Image.fromarray(loaded.target)))])


def score_pairs(pairs: list[EditPair], ocr=None, progress: bool = True) -> tuple[list[dict], dict]:
    """Records in the pairs' order, and thumbnails by id."""
    from tqdm import tqdm

    records, thumbs = [], {}
    for pair in tqdm(pairs, desc="scoring edits", unit="pair", disable=not progress):
        loaded = load_pair(pair)
        records.append(score_loaded(loaded, ocr))
        thumbs[pair.id] = pair_thumbnails(loaded)
    return records, thumbs


def write_edit_report(out: Path, records: list[dict], thumbs: dict, settings: dict, command: str) -> dict:
    """results.json and report.html in `out`; returns the results."""
    summary = summarize(records, EDIT_METRICS)
    results = {"kind": "edit", "command": command, "settings": settings, "summary": summary, "records": records,
               "metrics": {m.key: {"label": m.label, "higher_is_better": m.higher_is_better} for m in EDIT_METRICS}}
    write_json(out / "results.json", results)
    write_html(out / "report.html", "Edit consistency", command,
               [("Summary (bootstrap 95% intervals over pairs)", summary_section(summary, EDIT_METRICS, "pairs")),
                ("Pairs", record_table(records, COLUMNS, thumbs))])
    return results


def format_summary(summary: dict) -> str:
    return format_lines(summary, EDIT_METRICS)
