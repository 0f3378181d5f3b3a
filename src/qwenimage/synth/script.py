"""Character classes: CJK ideographs, line-breaking punctuation, and the Chinese character tiers.

Tiers come from the GB 2312 standard, read from Python's own codec (no data file): level 1 holds the 3755
most common characters (rows 16-55), level 2 the 3008 less common ones (rows 56-87). Together they cover
the 6763 characters of everyday simplified Chinese; rarer characters can be added from a user file
(SynthConfig.extra_chars_file) as a third tier.
"""

from __future__ import annotations

import functools

# Kinsoku (line-breaking) classes. A line must not start with CLOSING nor end with OPENING.
CLOSING = set("，。、；：？！）」』》〉】〕〗〙〛’”…—·％‰～,.;:?!)]}%")
OPENING = set("（「『《〈【〔〖〘〚‘“([{")
NO_SPLIT_PAIRS = ("……", "——")  # two-character marks never broken across lines

CJK_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x3134F))


def is_cjk(ch: str) -> bool:
    """A CJK unified (or compatibility) ideograph."""
    code = ord(ch)
    return any(low <= code <= high for low, high in CJK_RANGES)


def is_cjk_punct(ch: str) -> bool:
    """Full-width punctuation and CJK symbols (U+3000 block, full-width forms, curly quotes, ellipsis)."""
    code = ord(ch)
    return 0x3000 <= code <= 0x303F or 0xFF00 <= code <= 0xFFEF or ch in "‘’“”…—·"


def is_wide(ch: str) -> bool:
    """Characters laid out one by one (each is a break opportunity): ideographs and CJK punctuation."""
    return is_cjk(ch) or is_cjk_punct(ch)


def _gb2312_rows(first: int, last: int) -> str:
    chars = []
    for row in range(first, last + 1):
        for cell in range(1, 95):
            try:
                chars.append(bytes([0xA0 + row, 0xA0 + cell]).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return "".join(chars)


@functools.cache
def gb2312_tier(level: int) -> str:
    """GB 2312 level 1 (3755 common characters) or level 2 (3008 less common ones), in standard order."""
    if level == 1:
        return _gb2312_rows(16, 55)
    if level == 2:
        return _gb2312_rows(56, 87)
    raise ValueError(f"GB 2312 has levels 1 and 2, not {level}")


def read_extra_chars(path: str | None) -> str:
    """The ideographs of a user file, deduplicated in order of first appearance ('' without a file)."""
    if not path:
        return ""
    with open(path, encoding="utf-8") as handle:
        return "".join(dict.fromkeys(ch for ch in handle.read() if is_cjk(ch)))
