"""Text for template slots: corpus text cut to the slot's capacity, or small generators for structured
kinds (prices, dates, names, phone numbers, interface labels...), in the sample's language.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from qwenimage.synth.corpus import Corpus
from qwenimage.synth.wordlists import read_word_file

CORPUS_KINDS = {"title": "line", "subtitle": "line", "heading": "word", "body": "paragraph", "bullet": "line",
                "label": "word", "item": "word", "quote": "line"}
_TRAILING = "。！？；，.!?;,"
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")


@functools.cache
def _names_en() -> dict[str, list[str]]:
    pairs = (line.split(":", 1) for line in read_word_file("names_en.txt"))
    return {key.strip(): value.split() for key, value in pairs}


@functools.cache
def _lines(name: str) -> tuple[str, ...]:
    return tuple(read_word_file(name))


@functools.cache
def _list(name: str) -> tuple[str, ...]:
    return tuple(word for line in read_word_file(name) for word in line.split(" ") if word)


def _one(rng: np.random.Generator, options) -> str:
    return options[int(rng.integers(len(options)))]


def person_name(rng: np.random.Generator, zh: bool) -> str:
    if zh:
        given = "".join(_one(rng, _list("given_chars_zh.txt")) for _ in range(int(rng.integers(1, 3))))
        return _one(rng, _list("surnames_zh.txt")) + given
    names = _names_en()
    return f"{_one(rng, names['first'])} {_one(rng, names['last'])}"


def price(rng: np.random.Generator, zh: bool) -> str:
    value = float(rng.integers(1, 2000)) + (0.0 if rng.random() < 0.5 else float(rng.choice([0.5, 0.9, 0.99])))
    amount = f"{value:.2f}" if value % 1 else f"{int(value)}"
    return f"¥{amount}" if zh else f"{_one(rng, ('$', '€', '£'))}{amount}"


def date(rng: np.random.Generator, zh: bool) -> str:
    year, month, day = int(rng.integers(1990, 2036)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    if zh:
        return f"{year}年{month}月{day}日"
    return _one(rng, (f"{_MONTHS[month - 1]} {day}, {year}", f"{year}-{month:02d}-{day:02d}"))


def phone(rng: np.random.Generator, zh: bool) -> str:
    digits = rng.integers(0, 10, 10)
    if zh:
        return f"1{rng.integers(3, 9)}{''.join(map(str, digits[:1]))} {''.join(map(str, digits[1:5]))} " \
               f"{''.join(map(str, digits[5:9]))}"
    return f"+1 ({''.join(map(str, digits[:3]))}) {''.join(map(str, digits[3:6]))}-{''.join(map(str, digits[6:]))}"


def number(rng: np.random.Generator, zh: bool) -> str:
    value = int(rng.integers(1, 100))
    return _one(rng, (f"{value}%", f"{int(rng.integers(1, 999))},{int(rng.integers(0, 1000)):03d}",
                      f"{value}.{int(rng.integers(0, 10))}{'万' if zh else 'K'}", f"+{value}%"))


def _latin_word(corpus: Corpus, rng: np.random.Generator) -> str:
    return corpus.english.word(rng).lower().replace("'", "")


def _generators(corpus: Corpus) -> dict[str, Callable[[np.random.Generator, bool], str]]:
    return {
        "name": person_name, "price": price, "date": date, "phone": phone, "number": number,
        "time": lambda rng, zh: f"{int(rng.integers(0, 24)):02d}:{_one(rng, ('00', '15', '30', '45'))}",
        "button": lambda rng, zh: _one(rng, _lines("ui_zh.txt" if zh else "ui_en.txt")),
        "email": lambda rng, zh: f"{_latin_word(corpus, rng)}@{_latin_word(corpus, rng)}.com",
        "url": lambda rng, zh: f"www.{_latin_word(corpus, rng)}.com",
        "tag": lambda rng, zh: "#" + (corpus.sample(rng, "zh", "word", 4) if zh else _latin_word(corpus, rng)),
    }


def slot_text(rng: np.random.Generator, corpus: Corpus, kind: str, language: str, max_chars: int) -> str:
    """Text for a slot of `kind`, at most about `max_chars` characters for corpus kinds."""
    zh = language != "en"
    if kind not in CORPUS_KINDS:
        return _generators(corpus)[kind](rng, zh)
    text = corpus.sample(rng, language, CORPUS_KINDS[kind], max(1, max_chars))
    if kind in ("title", "heading", "label", "item", "bullet", "subtitle"):
        text = text.rstrip(_TRAILING) or text
    if kind == "title" and not zh:
        text = " ".join(word[:1].upper() + word[1:] for word in text.split(" "))
    if kind == "quote":
        text = f"“{text}”" if zh else f'"{text}"'
    return text
