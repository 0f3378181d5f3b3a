"""Line breaking for mixed Chinese/Latin text, with the Chinese (kinsoku) rules, and word spans for boxes.

Break units: every ideograph and CJK punctuation mark is its own unit (a break may fall on either side);
a run of Latin letters, digits and ASCII punctuation is one unit; a space is a unit where Latin text breaks.
"……" and "——" are single units. Rules, applied after a greedy fill:
- no line starts with closing punctuation (，。、；：？！）」』》…); no line ends with opening punctuation
  (（「『《“); the offending characters move together to the next line (oikomi), and only when a line would
  be left empty does a closing mark hang at the end of the line instead;
- English breaks only at spaces; a single word wider than the line gets a line of its own (the layout then
  shrinks the font until it fits).
"""

from __future__ import annotations

from typing import Callable, Sequence

from qwenimage.synth.script import CLOSING, NO_SPLIT_PAIRS, OPENING, is_wide


def break_units(text: str) -> list[str]:
    units, i = [], 0
    while i < len(text):
        if text[i:i + 2] in NO_SPLIT_PAIRS:
            units.append(text[i:i + 2])
            i += 2
        elif text[i] == " " or is_wide(text[i]):
            units.append(text[i])
            i += 1
        else:
            j = i
            while j < len(text) and text[j] != " " and not is_wide(text[j]) and text[j:j + 2] not in NO_SPLIT_PAIRS:
                j += 1
            units.append(text[i:j])
            i = j
    return units


def _next_start(units: Sequence[str], index: int) -> int:
    while index < len(units) and units[index] == " ":
        index += 1
    return index


def _violates(units: Sequence[str], start: int, end: int) -> bool:
    """Would a break before `end` start the next line with a closing mark or end this line with an opening one?"""
    last = end - 1
    while last > start and units[last] == " ":
        last -= 1
    following = _next_start(units, end)
    opens = units[last][-1] in OPENING
    closes = following < len(units) and units[following][0] in CLOSING
    return opens or closes


def _apply_kinsoku(units: Sequence[str], start: int, end: int) -> int:
    pushed = end
    while pushed > start + 1 and _violates(units, start, pushed):
        pushed -= 1
    if not _violates(units, start, pushed):
        return pushed
    while end < len(units) and _violates(units, start, end):  # nothing left to push: hang instead
        end += 1
    return end


def _fill(units: Sequence[str], widths: Sequence[float], start: int, max_width: float) -> int:
    width, end = 0.0, start
    while end < len(units):
        if width + widths[end] > max_width and end > start:
            break
        width += widths[end]
        end += 1
    return end


def wrap_units(units: Sequence[str], widths: Sequence[float], max_width: float) -> list[str]:
    """Greedy fill then kinsoku; returns the lines' texts without leading/trailing spaces."""
    lines, start = [], _next_start(units, 0)
    while start < len(units):
        end = _fill(units, widths, start, max_width)
        if end < len(units):
            end = _apply_kinsoku(units, start, end)
        lines.append("".join(units[start:end]).strip(" "))
        start = _next_start(units, end)
    return lines


def wrap_text(text: str, max_width: float, measure: Callable[[str], float]) -> list[str]:
    """Wrap `text` (explicit "\\n" kept as paragraph breaks) to `max_width` as measured by `measure(unit)`."""
    lines = []
    for paragraph in text.split("\n"):
        units = break_units(paragraph)
        lines.extend(wrap_units(units, [measure(u) for u in units], max_width) or [""])
    return lines


def word_spans(line: str) -> list[tuple[int, int]]:
    """[start, end) spans of the line's words: Latin runs between spaces; each ideograph on its own, with
    closing punctuation attached to the span before and opening punctuation to the span after."""
    spans: list[list[int]] = []
    pending_open = None
    i = 0
    for unit in break_units(line):
        end = i + len(unit)
        if unit == " ":
            pass
        elif len(unit) == 1 and unit in OPENING and is_wide(unit):
            pending_open = i if pending_open is None else pending_open
        elif spans and unit[0] in CLOSING and is_wide(unit[0]) and spans[-1][1] == i:
            spans[-1][1] = end
        else:
            spans.append([i if pending_open is None else pending_open, end])
            pending_open = None
        i = end
    if pending_open is not None:
        spans.append([pending_open, len(line)])
    return [(s, e) for s, e in spans]
