"""Summaries with bootstrap intervals, results.json and a one-file HTML page for per-image metric records
(`eval edit`, `eval vae`); the page is built with the shared pieces of html.py.

A record is a dict: "id", metric values (None when a metric does not apply, with the reason in
record["reasons"][key]) and, for pooled PSNR, the sums "sse" and "count". Summaries divide sums: PSNR is
computed from the pooled squared error of the records, other metrics are means over the records that have
them. Intervals: percentile bootstrap over records with stats.resample_weights (1000 resamples, seed 0),
the same resampling as the text metrics (the percentiles taken at resamples, without interpolation, so
an infinite PSNR does not make them nan). Summary entries: {"value", "low", "high", "n", "missing",
"higher_is_better"}; value None when no record has the metric.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from qwenimage.eval import html
from qwenimage.eval.stats import resample_weights

THUMB = 128  # pixels, long side
_ROW = "display:flex;flex-wrap:nowrap;gap:6px"


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_is_better: bool
    pooled_psnr: bool = False  # the value comes from the records' "sse" / "count" sums, not from record[key]
    pooled_from: tuple[str, str] = ("sse", "count")  # the record keys of those sums
    unit_range: bool = False  # values lie in [0, 1]: drawn in the bar chart
    short: str = ""  # label in the bar chart (default: the key)


def pooled_psnr(sse: np.ndarray, count: np.ndarray) -> np.ndarray:
    """PSNR (dB) of summed squared errors over summed counts; inf where the sum is 0."""
    mse = sse / np.maximum(count, 1)
    with np.errstate(divide="ignore"):
        return np.where(mse > 0, 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-300)), np.inf)


def summarize_metric(records: list[dict], metric: Metric) -> dict:
    present = [r for r in records if r.get(metric.key) is not None and not _is_nan(r[metric.key])]
    entry = {"value": None, "low": None, "high": None, "n": len(present), "missing": len(records) - len(present),
             "higher_is_better": metric.higher_is_better}
    if not present:
        return entry
    weights = resample_weights(len(present))                                                # [B, N]
    if metric.pooled_psnr:
        sse_key, count_key = metric.pooled_from
        sse = np.array([r[sse_key] for r in present], np.float64)                            # [N]
        count = np.array([r[count_key] for r in present], np.float64)
        value, boot = pooled_psnr(sse.sum(), count.sum()), pooled_psnr(weights @ sse, weights @ count)  # [B]
    else:
        values = np.array([float(r[metric.key]) for r in present], np.float64)               # [N]
        value, boot = values.mean(), weights @ values / len(present)                         # [B]
    low, high = np.percentile(boot, 2.5, method="lower"), np.percentile(boot, 97.5, method="higher")  # inf-safe
    return {**entry, "value": float(value), "low": float(low), "high": float(high)}


def summarize(records: list[dict], metrics: tuple[Metric, ...]) -> dict:
    return {metric.key: summarize_metric(records, metric) for metric in metrics}


def format_summary(summary: dict, metrics: tuple[Metric, ...]) -> str:
    """Plain-text lines: label, value, [interval], n."""
    lines = []
    for metric in metrics:
        entry = summary[metric.key]
        if entry["value"] is None:
            lines.append(f"{metric.label:<44} -  (n=0)")
        else:
            lines.append(f"{metric.label:<44} {entry['value']:.4g}  [{entry['low']:.4g}, {entry['high']:.4g}]  "
                         f"(n={entry['n']})")
    return "\n".join(lines)


def _is_nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def json_safe(value):
    """inf / -inf become the strings "inf" / "-inf" and nan becomes null: strict JSON, readable anywhere."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if math.isnan(value) else ("inf" if value == math.inf else "-inf" if value == -math.inf else value)
    if isinstance(value, np.integer):
        return int(value)
    return str(value) if isinstance(value, Path) else value


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, data) -> None:
    write_text_atomic(path, json.dumps(json_safe(data), indent=1, ensure_ascii=False, allow_nan=False) + "\n")


def image_uri(image: Image.Image, side: int = THUMB) -> str:
    """An in-memory image as an inline JPEG data URI (html.thumbnail reads files; these have none)."""
    thumb = image.convert("RGB")
    thumb.thumbnail((side, side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def cell(value, digits: int = 3) -> str:
    if value is None:
        return "<td>-</td>"
    if isinstance(value, float):
        return f"<td>{'∞' if value == math.inf else f'{value:.{digits}f}'}</td>"
    return f"<td>{html.esc(value)}</td>"


def summary_section(summary: dict, metrics: tuple[Metric, ...], title: str) -> str:
    """A table of the summary, and a bar chart of the metrics that lie in [0, 1]."""
    rows = [("", [f"<td>{html.esc(m.label)}</td>", html.interval_cell(summary[m.key]) if summary[m.key]["value"]
                  is not None else "<td>-</td>", f"<td>{summary[m.key]['n']}</td>",
                  f"<td>{'higher' if m.higher_is_better else 'lower'}</td>"]) for m in metrics]
    bars = [(m.short or m.key, summary[m.key]) for m in metrics if m.unit_range and summary[m.key]["value"] is not None]
    chart = html.bar_chart(f"{title} (95% interval)", bars) if bars else ""
    return html.table(["metric", "value [95% interval]", "n", "better"], rows) + f"<div>{chart}</div>"


def record_table(records: list[dict], columns: list[tuple[str, str]], thumbs: dict[str, list[tuple[str, str]]]) -> str:
    """One row per record: id, thumbnails (caption, data URI), then `columns` (key, header)."""
    rows = []
    for record in records:
        figures = "".join(f"<figure style='width:auto'><img src='{uri}' alt='{html.esc(caption)}' style='width:auto'>"
                          f"<figcaption>{html.esc(caption)}</figcaption></figure>"
                          for caption, uri in thumbs.get(record["id"], []))
        cells = [cell(record.get(key)) for key, _ in columns]
        images = f"<td><div style='{_ROW}'>{figures}</div></td>"
        rows.append(("", [f"<td>{html.esc(record['id'])}</td>", images, *cells]))
    return html.table(["id", "images", *[header for _, header in columns]], rows)


def write_html(path: Path, title: str, command: str, sections: list[tuple[str, str]]) -> None:
    """A self-contained page: the exact command, then (heading, HTML) sections."""
    body = f"<pre>{html.esc(command)}</pre>" + "".join(f"<h2>{html.esc(h)}</h2>{content}" for h, content in sections)
    write_text_atomic(path, html.page(title, body) + "\n")
