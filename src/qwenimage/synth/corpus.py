"""Corpus: the texts to render, from the built-in vocabularies and from user corpora.

    corpus = Corpus.from_config(SynthConfig())
    corpus.sample(rng, "zh", "paragraph")   # a Chinese paragraph, length from config.lengths["zh"]["paragraph"]

User corpora: .txt files hold one paragraph per line; .jsonl files one JSON object per line with a "text"
field. Each paragraph is filed as Chinese when at least 30% of its non-space characters are ideographs, as
English otherwise. A "line" is cut from a paragraph at a sentence end, a "word" is one English word or a
run of up to four ideographs. The words of config.exclude_words never appear: they are left out of the English
vocabulary and cut out of user paragraphs.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qwenimage.synth.compose import ChineseComposer, EnglishComposer
from qwenimage.synth.config import SynthConfig
from qwenimage.synth.script import is_cjk, read_extra_chars
from qwenimage.synth.sentences import SentenceCorpus
from qwenimage.synth.wordlists import chinese_vocabulary, english_vocabulary, remove_words

_SPACES = re.compile(r"\s+")
_SENTENCE = re.compile(r"[^。！？!?.]+[。！？!?.]*")
_CJK_RUN = re.compile(r"[\u3400-\u9fff]+")


def clean_text(text: str) -> str:
    """Collapse whitespace and drop control and format characters (private-use and unassigned code points
    stay: the font coverage check discards what cannot be drawn, rather than silently changing the text)."""
    text = "".join(ch for ch in text if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    return _SPACES.sub(" ", text).strip()


def detect_language(text: str) -> str:
    visible = [ch for ch in text if not ch.isspace()]
    return "zh" if visible and sum(map(is_cjk, visible)) >= 0.3 * len(visible) else "en"


def read_paragraphs(path: str | Path) -> list[str]:
    """Paragraphs of a .txt (one a line) or .jsonl ({"text": ...} a line) file, cleaned, blanks dropped."""
    path = Path(path)
    paragraphs = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if path.suffix == ".jsonl":
                try:
                    line = json.loads(line)["text"]
                except (json.JSONDecodeError, KeyError, TypeError) as err:
                    raise ValueError(f"{path}:{number}: expected a JSON object with a 'text' field ({err})") from err
            paragraphs.append(clean_text(line))
    return [p for p in paragraphs if p]


def cut_text(text: str, limit: int, language: str) -> str:
    """At most `limit` characters: after the last stop or comma when that keeps half of it, else at the
    last space for English, else (Chinese) right at the limit."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    stop = max(cut.rfind(mark) for mark in "。！？；，.!?;,")
    if stop + 1 >= limit / 2:
        return cut[:stop + 1].strip()
    if language == "en" and " " in cut.strip():
        cut = cut[:cut.rstrip().rindex(" ")]
    return cut.strip()


@dataclass
class UserCorpus:
    paragraphs: dict[str, list[str]] = field(default_factory=dict)  # language -> paragraphs

    @classmethod
    def from_files(cls, paths: tuple[str, ...]) -> "UserCorpus":
        corpus = cls()
        for path in paths:
            for paragraph in read_paragraphs(path):
                corpus.paragraphs.setdefault(detect_language(paragraph), []).append(paragraph)
        return corpus

    def has(self, language: str) -> bool:
        return bool(self.paragraphs.get(language))

    def sample(self, rng: np.random.Generator, language: str, length_class: str, span: tuple[int, int]) -> str:
        pool = self.paragraphs[language]
        paragraph = pool[int(rng.integers(len(pool)))]
        if length_class == "paragraph":
            return cut_text(paragraph, span[1], language)
        if length_class == "line":
            sentences = [s.strip() for s in _SENTENCE.findall(paragraph) if s.strip()]
            return cut_text(sentences[int(rng.integers(len(sentences)))], span[1], language)
        if language == "en":
            words = paragraph.split()
            return words[int(rng.integers(len(words)))]
        runs = _CJK_RUN.findall(paragraph) or [paragraph]
        run = runs[int(rng.integers(len(runs)))]
        start = int(rng.integers(max(len(run) - span[1], 0) + 1))
        return run[start:start + int(rng.integers(span[0], span[1] + 1))]


class Corpus:
    """User corpora (share config.corpus_weight), real sentences for lines and paragraphs (share
    config.sentence_weight of the rest, `synth.sentences`), and text composed from word lists."""

    def __init__(self, config: SynthConfig):
        self.config = config
        zh_vocab = chinese_vocabulary(config.vocab_size, config.word_temperature,
                                      read_extra_chars(config.extra_chars_file))
        self.excluded = frozenset(config.exclude_words)
        en_words = english_vocabulary(config.vocab_size, config.word_temperature, self.excluded)
        self.chinese = ChineseComposer(zh_vocab, config.rare_char_rate, en_words)
        self.english = EnglishComposer(en_words)
        self.user = UserCorpus.from_files(config.corpus_files)
        self.sentences = SentenceCorpus.load(self.excluded)

    def sample(self, rng: np.random.Generator, language: str, length_class: str, max_chars: int | None = None) -> str:
        """A text in `language` ("zh", "en" or "mixed": Chinese with some English words) of a length class,
        its length drawn from config.lengths (capped by `max_chars`, e.g. what a small box can hold)."""
        base = "en" if language == "en" else "zh"
        low, high = self.config.lengths[base][length_class]
        span = (min(low, max_chars), min(high, max_chars)) if max_chars else (low, high)
        text = ""
        if self.user.has(base) and rng.random() < self.config.corpus_weight:
            text = remove_words(self.user.sample(rng, base, length_class, span), self.excluded)
        if not text and length_class != "word" and language != "mixed" and rng.random() < self.config.sentence_weight:
            text = self.sentences.sample(rng, base, length_class, span)  # real sentences ("" if none fits)
        if not text and base == "en":
            text = self.english.compose(rng, length_class, span)
        elif not text:
            text = self.chinese.compose(rng, length_class, span, mixed=language == "mixed")
        return cut_text(text, max_chars, base) if max_chars else text
