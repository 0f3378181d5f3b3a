"""The funnel report: how many records entered and left each stage and why, score distributions, the
category balance and the buckets, as `report/funnel.json` and a self-contained `report/index.html`."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from qwenimage.curate.config import CurateConfig
from qwenimage.curate.record import STAGE_TITLES, STAGES, SYNTHETIC, Record
from qwenimage.curate.workdir import atomic_write_bytes, atomic_write_json

SYNTHETIC_ENTRY = STAGES.index("s4")  # synthetic text data join at S4


def entered(record: Record, stage_index: int) -> bool:
    """True if the record reached this stage (passed the ones before, and had entered the pipeline)."""
    if record.kind == SYNTHETIC and stage_index < SYNTHETIC_ENTRY:
        return False
    return record.stage_passed >= stage_index


def funnel(records: list[Record]) -> list[dict]:
    rows = []
    for index, stage in enumerate(STAGES):
        reasons = Counter(r.rejection.reason for r in records if r.rejection and r.rejection.stage == stage)
        count = sum(entered(r, index) for r in records)
        joined = sum(r.kind == SYNTHETIC for r in records) if index == SYNTHETIC_ENTRY else 0
        rows.append({"stage": stage, "title": STAGE_TITLES[stage], "entered": count, "joined": joined,
                     "rejected": sum(reasons.values()), "passed": count - sum(reasons.values()),
                     "reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))})
    return rows


def score_values(records: list[Record]) -> dict[str, dict[str, list[float]]]:
    """'stage.name' -> {'kept': values of records that passed that stage, 'rejected': values of records
    rejected there} for every numeric score."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"kept": [], "rejected": []})
    for record in records:
        for stage, scores in record.scores.items():
            outcome = "rejected" if record.rejection and record.rejection.stage == stage else "kept"
            for name, value in scores.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
                    values[f"{stage}.{name}"][outcome].append(float(value))
    return dict(sorted(values.items()))


def score_summary(values: dict[str, dict[str, list[float]]]) -> dict[str, dict]:
    summary = {}
    for key, groups in values.items():
        both = np.array(groups["kept"] + groups["rejected"])
        summary[key] = {"count": int(both.size), "min": float(both.min()), "median": float(np.median(both)),
                        "max": float(both.max())}
    return summary


def rejected_examples(records: list[Record], per_reason: int) -> dict[str, list[dict]]:
    """'stage/reason' -> up to `per_reason` examples (id, detail, thumbnail), in id order."""
    examples: dict[str, list[dict]] = defaultdict(list)
    for record in sorted((r for r in records if r.rejection), key=lambda r: r.id):
        key = f"{record.rejection.stage}/{record.rejection.reason}"
        if len(examples[key]) < per_reason:
            examples[key].append({"id": record.id, "detail": record.rejection.detail, "thumbnail": record.thumbnail})
    return dict(sorted(examples.items()))


def build_funnel(records: list[Record], reports: dict) -> dict:
    final = [r for r in records if r.kept]
    return {
        "records": len(records), "kept": len(final),
        "kinds": dict(Counter(r.kind for r in records)),
        "stages": funnel(records),
        "stage_passed": {str(k): v for k, v in sorted(Counter(r.stage_passed for r in records).items())},
        "languages": dict(Counter(r.labels["language"] for r in final if "language" in r.labels)),
        "caption_sources": dict(Counter(c.source if (c := r.chosen_caption()) else "none" for r in final)),
        "inputs": reports.get("inputs", {}), "duplicates": reports.get("dedup", {}),
        "categories": reports.get("s6", {}), "multiscale": reports.get("s7", {}),
        "scores": score_summary(score_values(records)),
    }


def write_report(out: Path, records: list[Record], reports: dict, config: CurateConfig) -> Path:
    """report/funnel.json and, unless `output.html_report` is off, report/index.html; the path of the latter
    (or of the JSON when there is no page)."""
    from qwenimage.curate.report_html import render_html

    data = build_funnel(records, reports)
    atomic_write_json(out / "report" / "funnel.json", data)
    if not config.output.html_report:
        return out / "report" / "funnel.json"
    html = render_html(data, score_values(records), rejected_examples(records, config.output.thumbnails_per_reason),
                       config)
    path = out / "report" / "index.html"
    atomic_write_bytes(path, html.encode("utf-8"))
    return path
