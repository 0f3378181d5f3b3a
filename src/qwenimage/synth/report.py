"""What a synth job made: summary.json (counts, discards, OCR agreement, coverage, speed), contact sheets.

`build_summary` sums the per-shard stats; `write_report` puts a PNG grid and an HTML page per strategy
under `out/report/`, from the first samples of each strategy in shard order.
"""

from __future__ import annotations

import html
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from qwenimage.synth.job import SynthJob
from qwenimage.synth.script import gb2312_tier
from qwenimage.synth.shards import iter_samples, shard_path
from qwenimage.synth.worker import ShardStats

FONT_CANDIDATES = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
                   "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
                   "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def build_summary(job: SynthJob, stats: list[ShardStats], run: dict) -> dict:
    def merged(name: str) -> dict:
        table: dict = {}
        for shard in stats:
            for key, value in getattr(shard, name).items():
                table[key] = table.get(key, 0) + value
        return dict(sorted(table.items()))

    written = sum(len(s.keys) for s in stats)
    failed = {key: reason for s in stats for key, reason in s.failed.items()}
    discards = merged("discards")
    attempts = sum(s.attempts for s in stats)
    assert attempts == written + sum(discards.values()), "every attempt is either written or discarded"
    return {
        "count": job.count, "written": written, "failed": len(failed), "failed_keys": failed,
        "attempts": attempts, "discards": discards,
        "by_strategy": merged("by_strategy"), "by_language": merged("by_language"),
        "captions_quoting_text": _share(sum(s.captions_quoting_text for s in stats), written),
        "ocr": _ocr_summary(job, stats),
        "characters": _coverage(stats),
        "throughput": _throughput(stats, written, run),
        "shards": job.num_shards, "run": run,
    }


def _share(part: int, whole: int) -> dict:
    return {"count": part, "of": whole, "fraction": round(part / whole, 4) if whole else None}


def _ocr_summary(job: SynthJob, stats: list[ShardStats]) -> dict:
    """Agreement of the kept samples and of every OCR read (before the threshold), per strategy."""
    per_strategy = {}
    for strategy in job.strategies:
        kept = [x for s in stats for x in s.ocr_kept.get(strategy, [])]
        read = [x for s in stats for x in s.ocr_all.get(strategy, [])]
        per_strategy[strategy] = {"kept": _scores(kept), "all_reads": _scores(read),
                                  "pass_rate": round(len(kept) / len(read), 4) if read else None}
    return {"threshold": job.ocr_threshold, "verify_fraction": job.verify_fraction,
            "reads": sum(s.verified for s in stats), "per_strategy": per_strategy}


def _scores(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "mean": None, "p10": None}
    return {"n": len(values), "mean": round(float(np.mean(values)), 4),
            "p10": round(float(np.percentile(values, 10)), 4)}


def _coverage(stats: list[ShardStats]) -> dict:
    """Distinct characters per language, and how much of each GB 2312 tier of Chinese characters was seen."""
    seen: dict[str, set[str]] = {}
    for shard in stats:
        for language, chars in shard.characters.items():
            seen.setdefault(language, set()).update(chars)
    coverage: dict = {language: {"distinct": len(chars)} for language, chars in sorted(seen.items())}
    every = set().union(*seen.values())
    coverage["gb2312"] = {f"level{level}": {"seen": len(every & set(gb2312_tier(level))), "of": len(gb2312_tier(level))}
                          for level in (1, 2)}
    return coverage


def _throughput(stats: list[ShardStats], written: int, run: dict) -> dict:
    """Samples per core: written samples / CPU seconds of the worker processes (OCR threads included);
    per second of this run: rendered samples / wall seconds."""
    seconds = {name: round(sum(s.seconds.get(name, 0.0) for s in stats), 3)
               for name in ("total", "cpu", "render", "ocr", "encode")}
    rendered = run["samples_rendered"]
    return {"worker_seconds": seconds,
            "samples_per_core_second": round(written / seconds["cpu"], 2) if seconds["cpu"] else None,
            "this_run_samples_per_second": round(rendered / run["wall_seconds"], 2) if run["wall_seconds"] else None}


def format_summary(summary: dict) -> str:
    """A few readable lines for the terminal."""
    lines = [f"written {summary['written']}/{summary['count']} samples in {summary['shards']} shard(s); "
             f"{summary['failed']} failed after all attempts; {summary['attempts']} attempts",
             f"by strategy: {summary['by_strategy']}   by language: {summary['by_language']}",
             f"discards: {summary['discards'] or 'none'}"]
    ocr = summary["ocr"]
    for strategy, row in ocr["per_strategy"].items():
        kept, read = row["kept"], row["all_reads"]
        if read["n"]:
            lines.append(f"OCR {strategy}: all reads mean {read['mean']} p10 {read['p10']} (n {read['n']}), "
                         f"kept mean {kept['mean']}, pass rate {row['pass_rate']}")
    lines.append(f"OCR verified fraction {ocr['verify_fraction']}, threshold {ocr['threshold']}, {ocr['reads']} reads")
    quoting = summary["captions_quoting_text"]
    lines.append(f"captions quoting the exact text: {quoting['count']}/{quoting['of']}")
    lines.append(f"distinct characters: {json.dumps(summary['characters'], ensure_ascii=False)}")
    speed = summary["throughput"]
    lines.append(f"speed: {speed['samples_per_core_second']} samples/s per core (CPU time); "
                 f"this run {speed['this_run_samples_per_second']} samples/s")
    return "\n".join(lines)


@dataclass
class SheetCell:
    key: str
    image: Image.Image
    record: dict  # the sample's JSON
    caption: str


def collect_cells(job: SynthJob, out: Path, per_strategy: int) -> dict[str, list[SheetCell]]:
    """The first `per_strategy` written samples of each strategy, in shard order."""
    cells: dict[str, list[SheetCell]] = {name: [] for name in job.strategies}
    for shard in range(job.num_shards):
        if all(len(c) >= per_strategy for c in cells.values()):
            break
        for key, files in iter_samples(shard_path(out, shard, job.format), job.format):
            record = json.loads(files["json"])
            bucket = cells.setdefault(record.get("strategy", "?"), [])
            if len(bucket) < per_strategy:
                image = Image.open(io.BytesIO(files["png"])).convert("RGB")
                bucket.append(SheetCell(key, image, record, files["txt"].decode("utf-8")))
    return {name: c for name, c in cells.items() if c}


def contact_sheet(cells: list[SheetCell], columns: int = 4, thumb: int = 256) -> Image.Image:
    """A grid of thumbnails, each above a strip with its key, language, OCR score and the start of its text."""
    thumbs = []
    for cell in cells:
        image = cell.image.copy()
        image.thumbnail((thumb, thumb))
        thumbs.append(image)
    size, pad = max(11, thumb // 20), 6
    strip, height = 2 * (size + 5) + 2, max(t.height for t in thumbs)
    rows = -(-len(cells) // columns)
    sheet = Image.new("RGB", (columns * (thumb + pad) + pad, rows * (height + strip + pad) + pad), (235, 235, 235))
    draw, font = ImageDraw.Draw(sheet), _font(size)
    for n, (cell, image) in enumerate(zip(cells, thumbs)):
        x, y = pad + (n % columns) * (thumb + pad), pad + (n // columns) * (height + strip + pad)
        sheet.paste(image, (x + (thumb - image.width) // 2, y + (height - image.height) // 2))
        draw.rectangle((x, y + height, x + thumb - 1, y + height + strip - 1), fill=(255, 255, 255))
        draw.text((x + 3, y + height + 2), _title(cell), fill=(90, 90, 90), font=font)
        text = " ".join(cell.record.get("text", "").split())
        draw.text((x + 3, y + height + size + 7), _fit(draw, text, font, thumb - 6), fill=(0, 0, 0), font=font)
    return sheet


def write_report(job: SynthJob, out: Path, per_strategy: int = 12, columns: int = 4) -> list[Path]:
    """report/<strategy>.png and .html (thumbnails under report/<strategy>/), and report/index.html."""
    folder = out / "report"
    folder.mkdir(exist_ok=True)
    written = []
    for strategy, cells in collect_cells(job, out, per_strategy).items():
        contact_sheet(cells, columns).save(folder / f"{strategy}.png", optimize=True)
        (folder / strategy).mkdir(exist_ok=True)
        for cell in cells:
            thumb = cell.image.copy()
            thumb.thumbnail((384, 384))
            thumb.save(folder / strategy / f"{cell.key}.jpg", quality=85)
        (folder / f"{strategy}.html").write_text(_page(strategy, cells), encoding="utf-8")
        written += [folder / f"{strategy}.png", folder / f"{strategy}.html"]
    links = "".join(f'<li><a href="{p.name}">{p.stem}</a></li>' for p in written if p.suffix == ".html")
    (folder / "index.html").write_text(f"<!doctype html><meta charset=utf-8><h1>synth report</h1><ul>{links}</ul>",
                                       encoding="utf-8")
    return written


def _page(strategy: str, cells: list[SheetCell]) -> str:
    cards = []
    for cell in cells:
        ocr = cell.record.get("ocr") or {}
        score = f"OCR {ocr['score']:.3f}: {html.escape(ocr.get('text', ''))}" if ocr else "not OCR-verified"
        cards.append(f'<figure><img src="{strategy}/{cell.key}.jpg"><figcaption><b>{cell.key}</b> '
                     f'{html.escape(cell.record.get("language", ""))}<br>{html.escape(cell.caption)}'
                     f'<br><small>{score}</small></figcaption></figure>')
    style = ("body{font-family:sans-serif}figure{display:inline-block;width:384px;margin:8px;vertical-align:top}"
             "img{max-width:384px}figcaption{font-size:13px;white-space:pre-wrap}")
    return (f"<!doctype html><meta charset=utf-8><title>{strategy}</title><style>{style}</style>"
            f"<h1>{strategy}</h1>{''.join(cards)}")


def _title(cell: SheetCell) -> str:
    ocr = cell.record.get("ocr")
    score = f" ocr {ocr['score']:.2f}" if ocr else ""
    return f"{cell.key} {cell.record.get('language', '')}{score}"


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _font(size: int):
    for path in FONT_CANDIDATES:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size)
