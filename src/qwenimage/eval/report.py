"""A text-eval run's results: `results.json` (metrics with 95% intervals per suite and per group) and a
self-contained `report.html` (table, bar charts, best and worst samples with their OCR reading, the command).

Groups: the values of a sample's "tier:", "regions:" and "lang:" tags (zh-chars tiers, multi-region counts,
long-text languages) get rows of their own under their suite.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

from qwenimage.eval import html
from qwenimage.eval.stats import METRICS, aggregate
from qwenimage.eval.text_run import record_score, write_json_atomic

GROUP_KEYS = ("tier", "regions", "lang")
SHOWN = ("exact_match", "word_accuracy", "ned", "sample_accuracy", "char_precision", "char_recall", "char_f1")
TITLES = {"exact_match": "exact match", "word_accuracy": "word acc.", "ned": "1 - NED",
          "sample_accuracy": "all texts exact", "char_precision": "char P", "char_recall": "char R",
          "char_f1": "char F1"}
EXAMPLES = 4  # best and worst samples shown per suite


def _metrics(records: list[dict]) -> dict:
    metrics = aggregate([record_score(r) for r in records])
    return {"n": len(records), "metrics": {name: interval.to_json() for name, interval in metrics.items()}}


def summarize(records: list[dict]) -> dict:
    """suite -> {"n", "metrics", "groups": {"tier:L1": {"n", "metrics"}, ...}}, suites in first-seen order."""
    by_suite: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_suite[record["suite"]].append(record)
    suites = {}
    for suite, members in by_suite.items():
        groups: dict[str, list[dict]] = defaultdict(list)
        for record in members:
            for tag in record["tags"]:
                if tag.split(":", 1)[0] in GROUP_KEYS:
                    groups[tag].append(record)
        suites[suite] = {**_metrics(members), "groups": {tag: _metrics(groups[tag]) for tag in sorted(groups)}}
    return suites


def _mean(records: list[dict], key: str) -> float | None:
    values = [r["seconds"][key] for r in records if key in r.get("seconds", {})]
    return round(sum(values) / len(values), 3) if values else None


def write_results(out: Path, run: dict, records: list[dict]) -> dict:
    results = {"run": run, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "samples": len(records),
               "metric_definitions": METRICS, "suites": summarize(records),
               "seconds_per_sample": {"generate": _mean(records, "generate"), "ocr": _mean(records, "ocr")}}
    write_json_atomic(out / "results.json", results)
    return results


def metric_rows(suites: dict) -> list[tuple[str, str, dict]]:
    """(css class, label, {"n", "metrics"}) for every suite, each followed by its groups."""
    rows = []
    for suite, summary in suites.items():
        rows.append(("suite", suite, summary))
        rows.extend(("group", tag, group) for tag, group in summary["groups"].items())
    return rows


def _sample_card(record: dict, out: Path, kind: str) -> str:
    image = Path(record["image"])
    lines = []
    for text in record["score"]["texts"]:
        mark = "<span class='ok'>&#10003;</span>" if text["exact"] else "<span class='bad'>&#10007;</span>"
        lines.append(f"{mark} {html.esc(text['text'][:60])} <span class='ci'>NED {text['ned']:.2f}</span>")
    reading = record["ocr"]["text"].replace("\n", " / ") or "(nothing read)"
    return (f"<figure class='{kind}'>{html.thumbnail(image if image.is_absolute() else out / image)}"
            f"<figcaption><b>{html.esc(record['id'])}</b> {kind}<br>{'<br>'.join(lines)}<br>"
            f"OCR: <i>{html.esc(reading[:120])}</i></figcaption></figure>")


def examples(records: list[dict], out: Path) -> str:
    """Per suite, one row: the best and the worst samples (by mean 1 - NED over their texts)."""
    parts = []
    by_suite: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_suite[record["suite"]].append(record)
    for suite, members in by_suite.items():
        ranked = sorted(members, key=lambda r: (-record_score(r).mean_ned, r["id"]))
        best = ranked[:EXAMPLES]
        worst = [r for r in ranked[::-1][:EXAMPLES] if r not in best]
        cards = [_sample_card(r, out, "best") for r in best] + [_sample_card(r, out, "worst") for r in worst]
        parts.append(f"<h3>{html.esc(suite)}: best and worst</h3><div class='cards'>{''.join(cards)}</div>")
    return "".join(parts)


def write_report(out: Path, results: dict, records: list[dict]) -> Path:
    rows = metric_rows(results["suites"])
    table = html.table(["suite / group", "n", *[TITLES[m] for m in SHOWN]],
                       [(cls, [f"<td>{html.esc(label)}</td>", f"<td>{s['n']}</td>",
                               *[html.interval_cell(s["metrics"].get(m)) for m in SHOWN]]) for cls, label, s in rows])
    charts = "".join(html.bar_chart(f"{TITLES[m]} (95% interval)",
                                    [(label, s["metrics"][m]) for _, label, s in rows]) for m in ("exact_match", "ned"))
    settings = results["run"]["settings"]
    source = settings.get("model") or settings.get("images") or "oracle renders of the expected texts"
    timing = ", ".join(f"{k} {v} s" for k, v in results["seconds_per_sample"].items() if v is not None)
    body = (f"<p>{results['samples']} samples from <b>{html.esc(source)}</b> ({html.esc(settings['source'])} mode), "
            f"suites {html.esc(', '.join(settings['suites']))}, split {html.esc(settings['split'])}; "
            f"{html.esc(results['created'])}{'; per sample: ' + html.esc(timing) if timing else ''}.</p>"
            f"<pre>{html.esc(results['run']['command'])}</pre><h2>Metrics</h2>{table}"
            f"<p class='ci'>Intervals: bootstrap 95% over samples (1000 resamples). Definitions: docs/eval/README.md."
            f"</p><div>{charts}</div><h2>Samples</h2>{examples(records, out)}")
    path = out / "report.html"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html.page("Text rendering evaluation", body), encoding="utf-8")
    tmp.replace(path)
    return path
