"""Small HTML pieces shared by the eval reports: page frame, table, inline SVG bar chart, image thumbnails."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from PIL import Image

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px} h2{font-size:18px;margin-top:28px} pre{background:#f4f4f4;padding:8px;white-space:pre-wrap}
table{border-collapse:collapse;font-size:13px} th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left} tr.group td:first-child{padding-left:22px;color:#555}
.ci{color:#888;font-size:11px} .up{color:#1a7f37;font-weight:600} .down{color:#c62828;font-weight:600}
.cards{display:flex;flex-wrap:wrap;gap:8px} figure{margin:0;width:128px;font-size:11px;border:1px solid #ddd;
padding:5px;overflow-wrap:anywhere} figure img{width:128px;height:auto;display:block} figure.worst{border-color:#e0a0a0}
.ok{color:#1a7f37} .bad{color:#c62828} h3{font-size:14px;margin:14px 0 6px}
"""


def esc(text) -> str:
    return html.escape(str(text))


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>{STYLE}</style>"
            f"</head><body><h1>{esc(title)}</h1>{body}</body></html>")


def interval_cell(metric: dict | None) -> str:
    if not metric:
        return "<td>-</td>"
    return (f"<td>{metric['value']:.3f} <span class='ci'>[{metric['low']:.3f}, {metric['high']:.3f}]</span>"
            "</td>")


def table(header: list[str], rows: list[tuple[str, list[str]]]) -> str:
    """rows: (css class, cells as ready-made <td> strings)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(f"<tr class='{cls}'>{''.join(cells)}</tr>" for cls, cells in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def bar_chart(title: str, bars: list[tuple[str, dict]], width: int = 560, bar_height: int = 18) -> str:
    """Horizontal bars in [0, 1] with 95% interval whiskers; bars: (label, {"value", "low", "high"})."""
    left, top = 170, 26
    span = width - left - 44  # room for the value label right of a full bar
    height = top + len(bars) * (bar_height + 6) + 24
    parts = [f"<text x='0' y='16' font-size='13' font-weight='600'>{esc(title)}</text>"]
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        x = left + tick * span
        parts.append(f"<line x1='{x:.1f}' y1='{top - 4}' x2='{x:.1f}' y2='{height - 20}' stroke='#e4e4e4'/>"
                     f"<text x='{x:.1f}' y='{height - 6}' font-size='10' text-anchor='middle'>{tick:g}</text>")
    for i, (label, metric) in enumerate(bars):
        y = top + i * (bar_height + 6)
        value, low, high = (min(max(metric[k], 0.0), 1.0) for k in ("value", "low", "high"))
        mid = y + bar_height / 2
        parts.append(
            f"<text x='{left - 6}' y='{mid + 4:.1f}' font-size='11' text-anchor='end'>{esc(label)}</text>"
            f"<rect x='{left}' y='{y}' width='{value * span:.1f}' height='{bar_height}' fill='#4c78a8'/>"
            f"<line x1='{left + low * span:.1f}' y1='{mid:.1f}' x2='{left + high * span:.1f}' y2='{mid:.1f}' "
            f"stroke='#222' stroke-width='1.5'/>"
            f"<text x='{left + value * span + 4:.1f}' y='{y + bar_height - 4}' font-size='10'>{value:.3f}</text>")
    return f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'>{''.join(parts)}</svg>"


def thumbnail(path: Path, side: int = 128) -> str:
    """An <img> with the image inlined as JPEG (the report stays one file), or a note when it is gone."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((side, side))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=85)
    except OSError:
        return f"<p class='bad'>image not found: {esc(path)}</p>"
    return f"<img src='data:image/jpeg;base64,{base64.b64encode(buffer.getvalue()).decode()}'>"
