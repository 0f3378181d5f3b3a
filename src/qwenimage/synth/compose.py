"""Text that looks like text, composed from the built-in vocabularies at a target length in characters.

Chinese: words joined into clauses of 4-12 characters, clauses into sentences with ，。！？；, now and then a
《title》, a “quotation”, an enumeration with 、 or a number. With probability `rare_char_rate` per clause a
word is built around a character drawn uniformly from a tier (mostly GB 2312 level 2), so rare characters
appear at a useful rate. English: words into sentences with capitals, commas and final stops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qwenimage.synth.wordlists import ChineseVocabulary, WordList

_ZH_ENDS = "。。。。！？"
_EN_ENDS = "....!?"
_TIER_WEIGHTS = (0.25, 0.6, 0.15)  # level 1, level 2, user extras


def join_words(words: list[str]) -> str:
    """Concatenate Chinese words; a space only between two Latin/digit ends ("AI 芯片", not "AIChips")."""
    text = ""
    for word in words:
        if text and text[-1].isascii() and text[-1].isalnum() and word[0].isascii() and word[0].isalnum():
            text += " "
        text += word
    return text


def _length_target(rng: np.random.Generator, span: tuple[int, int]) -> int:
    return int(rng.integers(span[0], span[1] + 1))


@dataclass
class ChineseComposer:
    vocab: ChineseVocabulary
    rare_char_rate: float
    english: WordList | None = None  # words mixed into "mixed" text

    def rare_word(self, rng: np.random.Generator) -> str:
        weights = np.asarray(_TIER_WEIGHTS[:len(self.vocab.tiers)])
        tier = self.vocab.tiers[int(rng.choice(len(weights), p=weights / weights.sum()))]
        ch = tier[int(rng.integers(len(tier)))]
        candidates = self.vocab.words_by_char.get(ch, [])[:12]
        return candidates[int(rng.integers(len(candidates)))] if candidates else ch

    def word(self, rng: np.random.Generator, mixed: bool = False) -> str:
        if mixed and self.english is not None and rng.random() < 0.15:
            word = self.english.sample(rng)
            return word.upper() if len(word) <= 3 else word.capitalize()
        return self.vocab.words.sample(rng)

    def phrase_words(self, rng: np.random.Generator, length: int, mixed: bool = False) -> list[str]:
        """Words until `length` characters; one rare-character word with probability rare_char_rate."""
        words: list[str] = []
        if rng.random() < self.rare_char_rate:
            words.append(self.rare_word(rng))
        while sum(map(len, words)) < length:
            words.append(self.word(rng, mixed))
        rng.shuffle(words)
        return words

    def phrase(self, rng: np.random.Generator, length: int, mixed: bool = False) -> str:
        words = self.phrase_words(rng, length, mixed)
        return words[0][:max(length, 1)] if len(words) == 1 else join_words(words)

    def clause(self, rng: np.random.Generator, length: int, mixed: bool = False) -> str:
        """A phrase, now and then with a 《title》, a “quotation”, a number or a 、 enumeration."""
        words = self.phrase_words(rng, length, mixed)
        roll, at = rng.random(), int(rng.integers(len(words)))
        if roll < 0.06:
            words[at] = f"《{words[at]}》"
        elif roll < 0.12:
            words[at] = f"“{words[at]}”"
        elif roll < 0.2:
            words.insert(at, f"{int(rng.integers(2, 2030))}{'年个次%'[int(rng.integers(4))]}")
        elif roll < 0.26 and len(words) >= 3:
            return join_words(["、".join(words[:3])] + words[3:])
        return join_words(words)

    def sentence(self, rng: np.random.Generator, mixed: bool = False) -> str:
        clauses = [self.clause(rng, int(rng.integers(4, 13)), mixed)
                   for _ in range(int(rng.integers(1, 4)))]
        joiner = "；" if rng.random() < 0.1 else "，"
        return joiner.join(clauses) + _ZH_ENDS[int(rng.integers(len(_ZH_ENDS)))]

    def compose(self, rng: np.random.Generator, length_class: str, span: tuple[int, int],
                mixed: bool = False) -> str:
        target = _length_target(rng, span)
        if length_class == "word":
            return self.phrase(rng, target, mixed)
        if length_class == "line":
            text = self.clause(rng, target, mixed)
            return text + ("" if rng.random() < 0.5 else _ZH_ENDS[int(rng.integers(len(_ZH_ENDS)))])
        text = ""
        while len(text) < target:
            text += self.sentence(rng, mixed)
        return text


@dataclass
class EnglishComposer:
    words: WordList

    def word(self, rng: np.random.Generator, max_len: int | None = None) -> str:
        """A word; with `max_len`, redrawn (a few times) until it is no longer than that."""
        for _ in range(8):
            word = self.words.sample(rng)
            if max_len is None or len(word) <= max_len:
                break
        return "I" if word == "i" else word

    def words_until(self, rng: np.random.Generator, length: int, limit: int) -> list[str]:
        """Words until `length` characters, never passing `limit` after the first word."""
        words = [self.word(rng, limit)]
        while len(" ".join(words)) < length:
            word = self.word(rng, limit - len(" ".join(words)) - 1)
            if len(" ".join(words + [word])) > limit:
                break
            words.append(word)
        return words

    def sentence(self, rng: np.random.Generator) -> str:
        words = [self.word(rng) for _ in range(int(rng.integers(5, 17)))]
        if len(words) > 8 and rng.random() < 0.5:
            cut = int(rng.integers(3, len(words) - 3))
            words[cut] += ","
        if rng.random() < 0.1:
            words.insert(int(rng.integers(1, len(words))), str(int(rng.integers(1, 2030))))
        words[0] = words[0].capitalize()
        return " ".join(words) + _EN_ENDS[int(rng.integers(len(_EN_ENDS)))]

    def compose(self, rng: np.random.Generator, length_class: str, span: tuple[int, int]) -> str:
        target = _length_target(rng, span)
        if length_class == "paragraph":
            sentences = [self.sentence(rng)]
            while len(" ".join(sentences)) < target:
                sentences.append(self.sentence(rng))
            return " ".join(sentences)
        words = self.words_until(rng, target, span[1])
        style = rng.random()
        if style < 0.3:
            return " ".join(w.capitalize() for w in words)
        if style < 0.4 and length_class == "word":
            return " ".join(words).upper()
        words[0] = words[0].capitalize()
        return " ".join(words)
