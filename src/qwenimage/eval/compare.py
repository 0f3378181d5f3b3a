"""`qwenimage eval compare RUN_A RUN_B`: two text-eval runs side by side, on the sample ids they share.

Per suite and metric: A and B with their 95% intervals (over the shared ids), B - A with a paired bootstrap
95% interval (the same resampled ids in both runs, see stats.py), and "significant" when that interval
excludes zero. Runs of different suites or sizes compare only where their ids meet.

Pixels: where both runs kept the image of a shared id at the same size (the same prompt and seed drawn by two
models, e.g. before and after post-training), PSNR between the two images outside the text, i.e. outside every
OCR box either run read, padded by TEXT_PAD pixels: what changed in the picture apart from the words (the
quality guard of RL fine-tuning on a text reward). Pooled over the ids (sums of squared errors), the median per
image, and the whole images for reference.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from qwenimage.eval import html
from qwenimage.eval.image_metrics import SquaredError, squared_error
from qwenimage.eval.report import TITLES
from qwenimage.eval.stats import METRICS, aggregate, paired_difference
from qwenimage.eval.text_run import record_score

SUMMARY_METRICS = ("exact_match", "word_accuracy", "ned", "char_f1")
TEXT_PAD = 4  # pixels around each OCR box that count as text


def load_records(run: Path) -> dict[str, dict]:
    """id -> record of a run folder (one that `qwenimage eval text` wrote)."""
    folder = Path(run) / "records"
    if not (Path(run) / "run.json").is_file() or not folder.is_dir():
        raise ValueError(f"{run} is not an eval text run folder (no run.json and records/)")
    records = {}
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        records[record["id"]] = record
    if not records:
        raise ValueError(f"{run} has no score records")
    return records


def compare_runs(run_a: Path, run_b: Path) -> dict:
    a, b = load_records(run_a), load_records(run_b)
    suites: dict[str, list[str]] = {}
    for sample_id in a:
        if sample_id in b:
            suites.setdefault(a[sample_id]["suite"], []).append(sample_id)
    if not suites:
        raise ValueError(f"{run_a} and {run_b} share no sample ids: nothing to compare")
    out = {"a": str(run_a), "b": str(run_b), "suites": {}}
    for suite, ids in suites.items():
        scores_a = [record_score(a[i]) for i in ids]
        scores_b = [record_score(b[i]) for i in ids]
        only = {"a": sum(r["suite"] == suite for r in a.values()) - len(ids),
                "b": sum(r["suite"] == suite for r in b.values()) - len(ids)}
        out["suites"][suite] = {"n": len(ids), "only": only,
                                "a": {k: v.to_json() for k, v in aggregate(scores_a).items()},
                                "b": {k: v.to_json() for k, v in aggregate(scores_b).items()},
                                "difference": paired_difference(scores_a, scores_b)}
        drift = pixel_drift([(Path(run_a), a[i]) for i in ids], [(Path(run_b), b[i]) for i in ids])
        if drift is not None:
            out["suites"][suite]["pixels"] = drift
    return out


def text_boxes_mask(records: list[dict], size: tuple[int, int], pad: int = TEXT_PAD) -> np.ndarray:
    """[H, W] bool: inside any OCR box of the records (their `ocr.lines[].box` quadrilaterals), grown by `pad`."""
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for record in records:
        for line in (record.get("ocr") or {}).get("lines", []):
            xs, ys = [p[0] for p in line["box"]], [p[1] for p in line["box"]]
            draw.rectangle([min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad], fill=255)
    return np.asarray(mask) > 0


def _image(run: Path, record: dict) -> np.ndarray | None:
    path = run / record["image"] if record.get("image") else None
    if path is None or not path.is_file():
        return None
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))                                        # [H, W, 3] uint8


def pixel_drift(side_a: list[tuple[Path, dict]], side_b: list[tuple[Path, dict]]) -> dict | None:
    """PSNR of B's images against A's outside the text of either (see the module doc); None without pairs."""
    pooled, whole, per_image, count = [0.0, 0], [0.0, 0], [], 0
    for (run_a, record_a), (run_b, record_b) in zip(side_a, side_b):
        image_a, image_b = _image(run_a, record_a), _image(run_b, record_b)
        if image_a is None or image_b is None or image_a.shape != image_b.shape:
            continue
        height, width = image_a.shape[:2]
        keep = ~text_boxes_mask([record_a, record_b], (width, height))
        outside, full = squared_error(image_a, image_b, keep), squared_error(image_a, image_b)
        pooled = [pooled[0] + outside.total, pooled[1] + outside.count]
        whole = [whole[0] + full.total, whole[1] + full.count]
        if outside.count:
            per_image.append(outside.psnr)
        count += 1
    if not count:
        return None
    return {"images": count, "psnr_outside_text": SquaredError(*pooled).psnr,
            "psnr_whole": SquaredError(*whole).psnr,
            "psnr_outside_text_median": float(np.median(per_image)) if per_image else float("nan"),
            "outside_text_fraction": pooled[1] / max(whole[1], 1)}


def format_comparison(result: dict) -> str:
    lines = [f"A = {result['a']}", f"B = {result['b']}", ""]
    header = f"{'suite':<14}{'metric':<16}{'A':>8}{'B':>8}{'B - A':>9}  95% interval of B - A"
    lines.append(header)
    for suite, entry in result["suites"].items():
        for metric in SUMMARY_METRICS:
            d = entry["difference"][metric]
            mark = "significant" if d["significant"] else "n.s."
            lines.append(f"{suite:<14}{TITLES[metric]:<16}{entry['a'][metric]['value']:>8.3f}"
                         f"{entry['b'][metric]['value']:>8.3f}{d['difference']:>+9.3f}  "
                         f"[{d['low']:+.3f}, {d['high']:+.3f}] {mark}")
        lines.append(f"{'':<14}({entry['n']} shared samples; only in A: {entry['only']['a']}, "
                     f"only in B: {entry['only']['b']})")
        if "pixels" in entry:
            px = entry["pixels"]
            lines.append(f"{'':<14}pixels of B against A on {px['images']} shared images: PSNR outside the text "
                         f"{px['psnr_outside_text']:.1f} dB (median per image {px['psnr_outside_text_median']:.1f}; "
                         f"{px['outside_text_fraction']:.0%} of the pixels), whole images {px['psnr_whole']:.1f} dB")
    return "\n".join(lines)


def write_comparison_html(path: Path, result: dict) -> None:
    rows = []
    for suite, entry in result["suites"].items():
        for metric in METRICS:
            d = entry["difference"][metric]
            cls = "" if not d["significant"] else ("up" if d["difference"] > 0 else "down")
            rows.append(("suite", [f"<td>{html.esc(suite)}</td>", f"<td>{html.esc(TITLES[metric])}</td>",
                                   html.interval_cell(entry["a"][metric]), html.interval_cell(entry["b"][metric]),
                                   f"<td class='{cls}'>{d['difference']:+.3f} <span class='ci'>[{d['low']:+.3f}, "
                                   f"{d['high']:+.3f}]</span></td>",
                                   f"<td>{'yes' if d['significant'] else 'no'}</td>", f"<td>{entry['n']}</td>"]))
    body = (f"<p>A: {html.esc(result['a'])}<br>B: {html.esc(result['b'])}</p>"
            + html.table(["suite", "metric", "A", "B", "B - A", "significant", "shared"], rows)
            + "<p class='ci'>Paired bootstrap over the shared sample ids, 1000 resamples; significant when the 95% "
              "interval of B - A excludes zero.</p>")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html.page("Text rendering: run comparison", body), encoding="utf-8")
    os.replace(tmp, path)
