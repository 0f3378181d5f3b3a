"""Built-in vocabularies: Chinese and English word frequencies from `wordfreq` (its data ship in the wheel).

Words are filtered (Chinese: only GB 2312 or user-added characters; English: letters and apostrophes; both:
no blocklisted words, see data/words/blocklist_*.txt) and sampled with probability ~ frequency ** temperature,
so that a temperature below 1 flattens the Zipf curve and reaches the long tail.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from importlib import resources

import numpy as np

from qwenimage.synth.script import gb2312_tier

_EN_WORD = re.compile(r"^[a-z][a-z']*[a-z]$|^[ai]$")
_LATIN_RUN = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")
_MAX_ZH_WORD = 6


@dataclass
class WordList:
    words: list[str]  # most frequent first
    probs: np.ndarray  # [N] sampling probabilities (tempered frequencies)

    def __post_init__(self):
        self._cdf = np.cumsum(self.probs)  # inverse-CDF sampling: O(log N) a draw

    def sample(self, rng: np.random.Generator) -> str:
        return self.sample_many(rng, 1)[0]

    def sample_many(self, rng: np.random.Generator, count: int) -> list[str]:
        picks = np.searchsorted(self._cdf, rng.random(count) * self._cdf[-1], side="right")
        return [self.words[min(int(i), len(self.words) - 1)] for i in picks]


def read_word_file(name: str) -> list[str]:
    """A shipped list under synth/data/words/: one entry per line, '#' comments and blanks skipped."""
    folder = resources.files("qwenimage.synth").joinpath("data").joinpath("words")
    text = folder.joinpath(name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _tempered(freqs: list[float], temperature: float) -> np.ndarray:
    weights = np.asarray(freqs, dtype=np.float64) ** temperature
    return weights / weights.sum()


@functools.cache
def _frequencies(language: str) -> dict[str, float]:
    from wordfreq import get_frequency_dict

    return get_frequency_dict(language)


def chinese_words(charset: frozenset[str]) -> list[tuple[str, float]]:
    """All wordfreq Chinese words made only of `charset`, without blocklisted parts, most frequent first."""
    blocked = read_word_file("blocklist_zh.txt")
    kept = [(word, freq) for word, freq in _frequencies("zh").items()
            if len(word) <= _MAX_ZH_WORD and all(ch in charset for ch in word)
            and not any(bad in word for bad in blocked)]
    return sorted(kept, key=lambda item: -item[1])


def english_words() -> list[tuple[str, float]]:
    blocked = set(read_word_file("blocklist_en.txt"))
    kept = [(word, freq) for word, freq in _frequencies("en").items()
            if _EN_WORD.match(word) and word not in blocked]
    return sorted(kept, key=lambda item: -item[1])


@dataclass
class ChineseVocabulary:
    words: WordList  # the `vocab_size` most frequent words, tempered
    tiers: list[str]  # character tiers: GB 2312 level 1, level 2, then user extras (if any)
    words_by_char: dict[str, list[str]]  # every kept word containing a character, most frequent first


@functools.cache
def chinese_vocabulary(vocab_size: int, temperature: float, extra_chars: str = "") -> ChineseVocabulary:
    tiers = [gb2312_tier(1), gb2312_tier(2)] + ([extra_chars] if extra_chars else [])
    ranked = chinese_words(frozenset("".join(tiers)))
    top = ranked[:vocab_size]
    by_char: dict[str, list[str]] = {}
    for word, _ in ranked:
        for ch in set(word):
            by_char.setdefault(ch, []).append(word)
    return ChineseVocabulary(WordList([w for w, _ in top], _tempered([f for _, f in top], temperature)), tiers,
                             by_char)


@functools.cache
def english_vocabulary(vocab_size: int, temperature: float, exclude: frozenset[str] = frozenset()) -> WordList:
    """The `vocab_size` most frequent English words that are not in `exclude` (lower case), tempered."""
    top = [(w, f) for w, f in english_words() if not find_words(w, exclude)][:vocab_size]
    return WordList([w for w, _ in top], _tempered([f for _, f in top], temperature))


def _latin_runs(text: str) -> list[re.Match]:
    return list(_LATIN_RUN.finditer(unicodedata.normalize("NFKC", text)))


def _is_excluded(run: str, exclude: frozenset[str] | set[str]) -> bool:
    low = run.lower()
    return low in exclude or any(part in exclude for part in low.split("'"))


def find_words(text: str, exclude: frozenset[str] | set[str]) -> list[str]:
    """The Latin words of `text` (NFKC, any case; "don't" is checked whole and as "don" and "t") in `exclude`."""
    if not exclude:
        return []
    return [m.group().lower() for m in _latin_runs(text) if _is_excluded(m.group(), exclude)]


def remove_words(text: str, exclude: frozenset[str] | set[str]) -> str:
    """`text` without the words of `exclude` (as find_words sees them, full-width letters aside), spaces collapsed."""
    if not exclude or not find_words(text, exclude):
        return text
    kept = _LATIN_RUN.sub(lambda m: "" if _is_excluded(m.group(), exclude) else m.group(), text)
    return re.sub(r" {2,}", " ", re.sub(r" +([,.;:!?])", r"\1", kept)).strip()
