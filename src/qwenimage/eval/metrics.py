"""Text-rendering metrics: pure functions of (expected texts, OCR reading) that return counts.

Normalisation (one rule for every metric): Unicode NFKC (full-width -> half-width), lower case, every
punctuation mark and symbol (Unicode categories P* and S*) turned into a space. Tokens are then the runs of
letters and digits, with every CJK ideograph a token of its own (OCR drops or invents spaces between
ideographs). "Compact" text is the tokens joined without spaces.

Per expected text:
- exact: its compact form equals a run of whole tokens of the reading, spaces removed (so "hello world" is
  found in a reading "HELLO WORLD!" and in "helloworld", "book" is not found in "books", and a Chinese text is
  found anywhere in the reading);
- words matched / words: how many of its tokens occur among the reading's tokens (a multiset: a reading token
  serves one expected token), CVTG-2K's word accuracy; for Chinese every character is a token;
- ned: 1 - d / len, where d is the edit distance between its compact form and the best-matching substring of
  the compact reading (free text before and after the match costs nothing), len its compact length. One wrong
  character in a word of n characters gives 1 - 1/n.
Multi-region prompts score each text this way against the whole reading, so the regions are independent.
Per sample (all texts together): the characters matched, expected and read (compact multisets), giving
character precision / recall / F1 for Chinese.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass

from qwenimage.synth.script import is_cjk

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def normalize(text: str) -> str:
    """NFKC, lower case, punctuation and symbols -> spaces, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    return " ".join(text.split())


def tokens(text: str) -> list[str]:
    """Runs of letters/digits of the normalised text, every CJK ideograph split off as its own token."""
    out = []
    for run in _TOKEN.findall(normalize(text)):
        piece = ""
        for ch in run:
            if is_cjk(ch):
                out.extend([piece, ch] if piece else [ch])
                piece = ""
            else:
                piece += ch
        if piece:
            out.append(piece)
    return out


def compact(text: str) -> str:
    return "".join(tokens(text))


def substring_distance(pattern: str, text: str) -> int:
    """min over substrings s of `text` of Levenshtein(pattern, s): semi-global alignment, O(len(p) * len(t))."""
    if not pattern:
        return 0
    previous = [0] * (len(text) + 1)  # row 0: matching may start anywhere in `text`
    for i, p in enumerate(pattern, 1):
        current = [i] + [0] * len(text)
        for j, t in enumerate(text, 1):
            current[j] = min(previous[j - 1] + (p != t), previous[j] + 1, current[j - 1] + 1)
        previous = current
    return min(previous)  # matching may end anywhere


def found_as_tokens(expected: list[str], reading: list[str]) -> bool:
    """True when "".join(expected) equals the concatenation of a contiguous run of reading tokens."""
    target = "".join(expected)
    if not target:
        return False
    for start in range(len(reading)):
        joined = ""
        for token in reading[start:]:
            joined += token
            if joined == target:
                return True
            if len(joined) >= len(target) or not target.startswith(joined):
                break
    return False


@dataclass(frozen=True)
class TextScore:
    text: str
    exact: bool
    words_matched: int
    words: int
    ned: float  # 1 - normalised edit distance to the best-matching substring of the reading, in [0, 1]


@dataclass(frozen=True)
class SampleScore:
    texts: list[TextScore]
    chars_matched: int  # multiset overlap of the compact expected texts and the compact reading
    chars_expected: int
    chars_read: int

    @property
    def all_exact(self) -> bool:
        return all(t.exact for t in self.texts)

    @property
    def mean_ned(self) -> float:
        return sum(t.ned for t in self.texts) / len(self.texts) if self.texts else 0.0

    def to_json(self) -> dict:
        return {"texts": [asdict(t) for t in self.texts], "chars_matched": self.chars_matched,
                "chars_expected": self.chars_expected, "chars_read": self.chars_read}

    @classmethod
    def from_json(cls, data: dict) -> "SampleScore":
        return cls([TextScore(**t) for t in data["texts"]], data["chars_matched"], data["chars_expected"],
                   data["chars_read"])


def score_text(expected: str, reading_tokens: list[str]) -> TextScore:
    want = tokens(expected)
    target = "".join(want)
    available = Counter(reading_tokens)
    matched = 0
    for token in want:
        if available[token] > 0:
            available[token] -= 1
            matched += 1
    distance = substring_distance(target, "".join(reading_tokens))
    ned = 1.0 - distance / len(target) if target else 0.0
    return TextScore(expected, found_as_tokens(want, reading_tokens), matched, len(want), ned)


def score_sample(expected: list[str] | tuple[str, ...], reading: str) -> SampleScore:
    """Every expected text against one OCR reading (lines joined by newlines)."""
    read = tokens(reading)
    want_chars = Counter("".join(compact(text) for text in expected))
    read_chars = Counter("".join(read))
    overlap = sum((want_chars & read_chars).values())
    return SampleScore([score_text(text, read) for text in expected], overlap, sum(want_chars.values()),
                       sum(read_chars.values()))
