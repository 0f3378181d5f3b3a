"""The HTML funnel report: one self-contained page (plots as embedded PNGs from matplotlib, thumbnails as
embedded JPEGs), readable offline in any browser."""

from __future__ import annotations

import base64
import html
import io
import math

import numpy as np

from qwenimage.curate.config import CurateConfig
from qwenimage.curate.record import STAGE_TITLES

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;color:#1d2330}
h1{font-size:24px;margin-bottom:4px} h2{font-size:19px;margin-top:32px;border-bottom:2px solid #e3e6ee}
h3{font-size:15px;margin:18px 0 6px} .muted{color:#6b7385}
table{border-collapse:collapse;margin:8px 0;font-size:14px}
td,th{padding:4px 10px;border-bottom:1px solid #e8eaf0;text-align:right}
th{background:#f4f6fa} td:first-child,th:first-child{text-align:left}
.cards{display:flex;gap:12px;flex-wrap:wrap} .card{background:#f4f6fa;border-radius:8px;padding:10px 16px}
.card b{display:block;font-size:22px} .reason{color:#a3332a} img.plot{max-width:100%;border:1px solid #e8eaf0}
.thumbs{display:flex;gap:8px;flex-wrap:wrap} figure{margin:0;width:136px;font-size:11px;word-break:break-all}
figure img{max-width:128px;max-height:128px;display:block;border:1px solid #ccd}
.nothumb{width:128px;height:64px;background:#eee;display:flex;align-items:center;justify-content:center}
"""
# Scores plotted per stage, with the config thresholds drawn on them.
THRESHOLDS = {
    "s2.luma": ("s2", ["min_luma", "max_luma"]), "s2.saturated_fraction": ("s2", ["max_saturated_fraction"]),
    "s2.entropy": ("s2", ["min_entropy"]), "s2.clarity": ("s2", ["min_clarity"]), "s2.noise": ("s2", ["max_noise"]),
    "s2.flat_fraction": ("s2.graphic", ["min_flat_fraction"]),
    "s3.raw_tokens": ("s3", ["max_caption_tokens"]), "s4.text_area": ("s4", ["max_text_area"]),
    "s4.char_height": ("s4", ["min_char_height"]), "s5.sharpness": ("s5", ["min_sharpness"]),
    "s5.blockiness": ("s5", ["max_blockiness"]), "s5.dark_fraction": ("s5", ["max_dark_fraction"]),
    "s5.bright_fraction": ("s5", ["max_bright_fraction"]),
}
LOG_SCALE = {"s2.clarity", "s5.sharpness"}


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=72)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _thresholds(key: str, config: CurateConfig) -> list[float]:
    section, names = THRESHOLDS.get(key, ("", []))
    node = config
    for part in section.split(".") if section else []:
        node = getattr(node, part)
    return [getattr(node, n) for n in names] if section else []


def histograms(values: dict[str, dict[str, list[float]]], stage: str, config: CurateConfig) -> str | None:
    """One PNG (base64) with a histogram per numeric score of `stage`: kept vs rejected there, thresholds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [key for key, groups in values.items()
            if key.startswith(stage + ".") and len(set(groups["kept"] + groups["rejected"])) > 1]
    if not keys:
        return None
    columns, rows = min(4, len(keys)), math.ceil(len(keys) / 4)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.5 * rows))
    for axis, key in zip(np.atleast_1d(axes).ravel(), keys):
        kept, rejected = np.array(values[key]["kept"]), np.array(values[key]["rejected"])
        log = key in LOG_SCALE
        data = [np.log10(np.maximum(v, 1e-3)) if log else v for v in (kept, rejected)]
        edges = np.histogram_bin_edges(np.concatenate(data), bins=24)
        axis.hist([data[0], data[1]], bins=edges, stacked=True, color=["#4c78a8", "#e45756"],
                  label=["passed", "rejected"])
        for threshold in _thresholds(key, config):
            axis.axvline(math.log10(max(threshold, 1e-3)) if log else threshold, color="#222", linestyle="--", lw=1)
        axis.set_title(key + (" (log10)" if log else ""), fontsize=10)
        axis.tick_params(labelsize=8)
    for axis in np.atleast_1d(axes).ravel()[len(keys):]:
        axis.axis("off")
    np.atleast_1d(axes).ravel()[0].legend(fontsize=8)
    figure.tight_layout()
    encoded = _png(figure)
    plt.close(figure)
    return encoded


def funnel_plot(stages: list[dict]) -> str:
    """A horizontal bar per stage: records passed (blue) and rejected there (red)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 2.8))
    names = [s["stage"].upper() for s in stages][::-1]
    passed, rejected = [s["passed"] for s in stages][::-1], [s["rejected"] for s in stages][::-1]
    axis.barh(names, passed, color="#4c78a8", label="passed")
    axis.barh(names, rejected, left=passed, color="#e45756", label="rejected")
    for y, (p, r) in enumerate(zip(passed, rejected)):
        axis.text(p + r, y, f"  {p}", va="center", fontsize=9)
    axis.legend(fontsize=9, loc="lower right")
    axis.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    encoded = _png(figure)
    plt.close(figure)
    return encoded


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _funnel_section(data: dict) -> str:
    rows = []
    for stage in data["stages"]:
        reasons = ", ".join(f"<span class=reason>{html.escape(k)}</span> {v}" for k, v in stage["reasons"].items())
        joined = f" (+{stage['joined']} synthetic)" if stage["joined"] else ""
        rows.append([html.escape(stage["title"]), f"{stage['entered']}{joined}", stage["rejected"], stage["passed"],
                     reasons or "-"])
    plot = f"<img class=plot src='data:image/png;base64,{funnel_plot(data['stages'])}'>"
    return "<h2>Funnel</h2>" + plot + _table(["stage", "entered", "rejected", "passed", "reasons"], rows)


def _category_section(categories: dict) -> str:
    if not categories:
        return ""
    mode = categories.get("mode", "off")
    achieved = categories.get("achieved_shares", {})
    names = sorted(set(categories.get("target_shares", {})) | set(categories.get("supply", {})))
    weights = {c: f"{w:.3f}" for c, w in categories.get("category_weights", {}).items()}
    extra = {"weights": ("weight", weights),
             "upsample": ("written", categories.get("written", {})),
             "downsample": ("selected", categories.get("selected", {}))}.get(mode)
    headers = ["category", "supply", "target"] + ([extra[0]] if extra else []) + ["achieved share"]
    rows = [[c, categories.get("supply", {}).get(c, 0), f"{categories.get('target_shares', {}).get(c, 0):.2f} %"]
            + ([extra[1].get(c, "-")] if extra else []) + [f"{achieved.get(c, 0):.2f} %"] for c in names]
    note = (f"<p class=muted>Mode <b>{html.escape(mode)}</b>: {categories.get('dropped', 0)} records dropped by "
            "balancing. Achieved shares are those of the training stream the output gives (sample weights x "
            "copies).</p>")
    return "<h2>Categories (S6)</h2>" + _table(headers, rows) + note


def _inputs_section(inputs: dict, duplicates: dict) -> str:
    parts = []
    skipped = inputs.get("skipped", [])
    if skipped:
        rows = [[html.escape(s["path"]), html.escape(s["why"]), s["files"]] for s in skipped]
        parts.append(f"<h2>Inputs</h2><p class=muted>{len(skipped)} side folders or files ({inputs['skipped_files']}"
                     " files) were not read:</p>" + _table(["path", "why", "files"], rows))
    if duplicates.get("duplicates"):
        rows = [[html.escape(d["id"]), html.escape(d["kept"]), d["reason"], html.escape(d["why"])]
                for d in duplicates["examples"]]
        parts.append(f"<h2>Duplicates (S1)</h2><p class=muted>{duplicates['duplicates']} duplicates; the copy kept "
                     f"won because: {html.escape(str(duplicates['kept_because']))}</p>"
                     + _table(["duplicate", "kept copy", "reason", "why that copy"], rows))
    return "".join(parts)


def _bucket_section(multiscale: dict) -> str:
    if not multiscale:
        return ""
    parts = ["<h2>Buckets (S7)</h2>"]
    for tier, counts in multiscale.get("buckets", {}).items():
        parts.append(f"<h3>{tier}p tier</h3>" + _table(["bucket", "records"], [[k, v] for k, v in counts.items()]))
    top = multiscale.get("top_tier", {})
    parts.append(f"<p class=muted>{top.get('records', 0)} records in the {top.get('tier')}p tier after the "
                 "hierarchical balance.</p>")
    return "".join(parts)


def _examples_section(examples: dict[str, list[dict]]) -> str:
    parts = ["<h2>Rejected examples</h2>"]
    for key, items in examples.items():
        stage, _, reason = key.partition("/")
        figures = []
        for item in items:
            picture = (f"<img src='data:image/jpeg;base64,{item['thumbnail']}'>" if item["thumbnail"]
                       else "<div class=nothumb>no image</div>")
            figures.append(f"<figure>{picture}<figcaption>{html.escape(item['id'])}<br><span class=muted>"
                           f"{html.escape(item['detail'])}</span></figcaption></figure>")
        parts.append(f"<h3>{html.escape(STAGE_TITLES.get(stage, stage))}: <span class=reason>{html.escape(reason)}"
                     f"</span></h3><div class=thumbs>{''.join(figures)}</div>")
    return "".join(parts)


def render_html(data: dict, values: dict, examples: dict, config: CurateConfig) -> str:
    cards = [("records", data["records"]), ("kept (all 7 stages)", data["kept"])] + \
        [(f"{k} records", v) for k, v in sorted(data["kinds"].items())]
    plots = []
    for stage, title in STAGE_TITLES.items():
        encoded = histograms(values, stage, config)
        if encoded:
            plots.append(f"<h3>{html.escape(title)}</h3><img class=plot src='data:image/png;base64,{encoded}'>")
    languages = ", ".join(f"{k}: {v}" for k, v in sorted(data["languages"].items())) or "-"
    sources = ", ".join(f"{k}: {v}" for k, v in sorted(data["caption_sources"].items())) or "-"
    return ("<!doctype html><html><head><meta charset='utf-8'><title>qwenimage curate: funnel report</title>"
            f"<style>{STYLE}</style></head><body><h1>Curation funnel</h1>"
            "<p class=muted>qwenimage curate: the seven stages of the Qwen-Image data pipeline.</p>"
            "<div class=cards>" + "".join(f"<div class=card><b>{v}</b>{html.escape(k)}</div>" for k, v in cards)
            + "</div>" + _funnel_section(data)
            + f"<p>Text languages of the final set: {languages}. Caption sources: {sources}.</p>"
            + _inputs_section(data.get("inputs", {}), data.get("duplicates", {}))
            + _category_section(data["categories"]) + _bucket_section(data["multiscale"])
            + _examples_section(examples)
            + "<h2>Score distributions</h2><p class=muted>Blue: passed that stage; red: rejected there; dashed: "
              "thresholds.</p>" + "".join(plots) + "</body></html>")
