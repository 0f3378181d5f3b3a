"""Real sentences, Chinese and English, for lines and paragraphs: the 4,354 graded sentences of the
`hsk-sentences-audio` package (simplified Chinese with an English translation each, 19 everyday topics;
the JSON ships inside the wheel, CC-BY-SA-4.0), read offline.

    corpus = SentenceCorpus.load()
    corpus.sample(rng, "zh", "paragraph", (30, 120))   # consecutive sentences of one topic, 30..120 characters

A line is one sentence (or a few short ones); a paragraph runs on through the sentences of one topic, so it
reads as connected text. A text is never cut inside a sentence: when no whole sentence fits the span, the
answer is "" and the caller composes text instead.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

LICENSE = "CC-BY-SA-4.0 (hsk-sentences-audio dataset)"


@dataclass(frozen=True)
class Topic:
    name: str
    sentences: tuple[str, ...]  # in the package's order


def _join(language: str, sentences: list[str]) -> str:
    return ("" if language == "zh" else " ").join(sentences)


_SENTENCE_END = "。！？.!?”\""


def _usable(text: str, excluded: frozenset[str]) -> bool:
    """A whole sentence (it ends like one: the data holds ~80 'placeholder' translations) without an excluded
    word."""
    if not text or text[-1] not in _SENTENCE_END:
        return False
    return not any(word.lower() in excluded for word in re.findall(r"[A-Za-z']+", text))


@functools.cache
def _topics(excluded: frozenset[str]) -> dict[str, tuple[Topic, ...]]:
    from hsk_sentences_audio import load_sentences

    by_topic: dict[str, dict[str, list[str]]] = {"zh": {}, "en": {}}
    for row in load_sentences():
        english = str(row.get("translation", {}).get("en", "")).strip()
        for language, text in (("zh", str(row.get("chinese", "")).strip()), ("en", english)):
            if _usable(text, excluded):
                by_topic[language].setdefault(str(row.get("topic", "misc")), []).append(text)
    return {language: tuple(Topic(name, tuple(items)) for name, items in sorted(topics.items()))
            for language, topics in by_topic.items()}


class SentenceCorpus:
    """Sentences by language and topic; `sample` draws a line or a paragraph within a length span."""

    def __init__(self, topics: dict[str, tuple[Topic, ...]]):
        self.topics = topics
        self._weights = {language: np.array([len(t.sentences) for t in items], dtype=np.float64)
                         for language, items in topics.items()}

    @classmethod
    def load(cls, excluded: frozenset[str] = frozenset()) -> SentenceCorpus:
        """The packaged sentences; English sentences with a word of `excluded` (lower case) are left out."""
        return cls(_topics(frozenset(excluded)))

    def has(self, language: str) -> bool:
        return bool(self.topics.get(language))

    def sample(self, rng: np.random.Generator, language: str, length_class: str, span: tuple[int, int]) -> str:
        """A line (one sentence, more if they are short) or a paragraph (consecutive sentences of a topic) of
        span[0]..span[1] characters in `language` ("zh" or "en"); "" when no whole sentence fits."""
        weights = self._weights[language]
        topic = self.topics[language][int(rng.choice(len(weights), p=weights / weights.sum()))]
        start = int(rng.integers(len(topic.sentences)))
        target = span[0] if length_class == "line" else int(rng.integers(span[0], span[1] + 1))
        chosen: list[str] = []
        for offset in range(len(topic.sentences)):
            sentence = topic.sentences[(start + offset) % len(topic.sentences)]
            if len(_join(language, chosen + [sentence])) > span[1]:
                break
            chosen.append(sentence)
            if len(_join(language, chosen)) >= target:
                break
        return _join(language, chosen)
