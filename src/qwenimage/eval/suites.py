"""The text-rendering prompt suites: names, loading, held-out words, and rebuilding the shipped JSONL files.

    samples = load_suite("en-words")              # 250 SuiteSample, from data/suites/en-words.jsonl
    samples = load_suite("words:seen.txt")        # an en-words-style suite built from a word file ("words-seen")
    heldout_words("en-words")                     # the 250 held-out words, lower case
    en_word_prompt("harbor", 3), EN_WORD_TEMPLATES  # the en-words templates (shared with training captions)

| suite | prompts | what each asks for |
|---|---|---|
| en-words | 250 | one held-out English word in a scene (12 templates) |
| en-phrases | 200 | 2-4 held-out words |
| multi-region | 160 | 2, 3, 4, 5 quoted texts (40 each) in one scene, scored per region |
| long-text | 80 | a paragraph of 3-5 sentences, 40 English + 40 Chinese |
| zh-chars | 300 | one Chinese character, 100 from each tier L1 / L2 / L3 |
| zh-phrases | 200 | a Chinese word or two (2-8 characters) |

A word file has one word a line ('#' comments and blank lines skipped). How suites are built: suite_build.py.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Callable

from qwenimage.eval import suite_build as build
from qwenimage.eval.prompts import EN_WORD_TEMPLATES, en_word_prompt
from qwenimage.eval.suite_build import SuiteSample

__all__ = ["EN_WORD_TEMPLATES", "SUITES", "SuiteSample", "en_word_prompt", "heldout_words", "load_suite",
           "read_words", "select", "write_suites"]

HELDOUT_FILE = "en_words_heldout.txt"
WORDS_PREFIX = "words:"
_WORD = re.compile(r"^\S+$")
_LATIN = re.compile(r"[a-z]+(?:'[a-z]+)*")


@dataclass(frozen=True)
class SuiteInfo:
    build: Callable[[], list[SuiteSample]]
    description: str
    heldout: bool  # every English word of its texts comes from the held-out list


def _data() -> Path:
    return Path(str(resources.files("qwenimage.eval").joinpath("data")))


def read_words(path: str | Path) -> list[str]:
    """The words of a word file, in order, duplicates dropped; a line with a space is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"word file not found: {path}")
    words = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not _WORD.match(line):
            raise ValueError(f"{path}:{number}: {line!r} is not one word (one word a line)")
        words.append(line)
    if not words:
        raise ValueError(f"word file {path} holds no words")
    return list(dict.fromkeys(words))


def _heldout() -> list[str]:
    return read_words(_data() / HELDOUT_FILE)


def _sentences(language: str) -> list[str]:
    path = _data() / f"long_text_{language}.txt"
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


SUITES: dict[str, SuiteInfo] = {
    "en-words": SuiteInfo(lambda: build.words_suite("en-words", _heldout()),
                          "one held-out English word in a scene", heldout=True),
    "en-phrases": SuiteInfo(lambda: build.en_phrases("en-phrases", _heldout()),
                            "2-4 held-out English words", heldout=True),
    "multi-region": SuiteInfo(lambda: build.multi_region("multi-region", _heldout()),
                              "2-5 quoted texts in one scene, scored per region", heldout=True),
    "long-text": SuiteInfo(lambda: build.long_text("long-text", {lang: _sentences(lang) for lang in ("en", "zh")}),
                           "a paragraph of 3-5 sentences (English and Chinese)", heldout=False),
    "zh-chars": SuiteInfo(lambda: build.zh_chars("zh-chars"), "one Chinese character, tiers L1/L2/L3",
                          heldout=False),
    "zh-phrases": SuiteInfo(lambda: build.zh_phrases("zh-phrases"), "a Chinese word or two (2-8 characters)",
                            heldout=False),
}


def _unknown(spec: str) -> ValueError:
    return ValueError(f"unknown suite {spec!r}: choose from {', '.join(SUITES)}, or words:PATH.txt")


def words_suite_name(path: str | Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9]+", "-", Path(path).stem).strip("-").lower() or "file"
    return f"words-{stem}"


def load_suite(spec: str) -> list[SuiteSample]:
    """A shipped suite by name, or 'words:PATH' (an en-words-style suite named words-<file stem>)."""
    if spec.startswith(WORDS_PREFIX):
        path = spec[len(WORDS_PREFIX):]
        return build.words_suite(words_suite_name(path), read_words(path))
    if spec not in SUITES:
        raise _unknown(spec)
    with (_data() / "suites" / f"{spec}.jsonl").open(encoding="utf-8") as handle:
        return [SuiteSample.from_json(json.loads(line)) for line in handle if line.strip()]


def heldout_words(spec: str | Path) -> set[str]:
    """Lower-case English words to keep out of training text: 'en-words' (or 'suite:en-words', any held-out
    suite), 'words:PATH' or a word-file path. The synth engine excludes them as whole words, any case."""
    spec = str(spec)
    name = spec[len("suite:"):] if spec.startswith("suite:") else spec
    if name.startswith(WORDS_PREFIX):
        return {word.lower() for word in read_words(name[len(WORDS_PREFIX):])}
    if name not in SUITES and (Path(name).is_file() or Path(name).suffix or "/" in name):  # a word file
        return {word.lower() for word in read_words(name)}
    if name not in SUITES:
        raise _unknown(spec)
    if not SUITES[name].heldout:
        held = ", ".join(n for n, info in SUITES.items() if info.heldout)
        raise ValueError(f"suite {name!r} is not built from held-out words: use one of {held} or a word file")
    return {word for sample in load_suite(name) for text in sample.texts for word in _LATIN.findall(text.lower())}


def select(samples: list[SuiteSample], n: int | None = None, split: str = "all") -> list[SuiteSample]:
    """The samples of `split` ("all", "dev" or "test"), the first `n` of them when n is given."""
    if split not in ("all", "dev", "test"):
        raise ValueError(f"unknown split {split!r}: use all, dev or test")
    if n is not None and n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    chosen = [s for s in samples if split == "all" or s.split == split]
    return chosen[:n] if n is not None else chosen


def reword(samples: list[SuiteSample], template: str) -> list[SuiteSample]:
    """The samples with every prompt re-worded as `template` ('a sign that says "{text}"') around its expected
    text: one wording for all, e.g. to measure a model trained on one wording apart from the suite's many."""
    if "{text}" not in template:
        raise ValueError(f"--template needs a {{text}} slot for the expected text, got {template!r}")
    several = [s for s in samples if len(s.texts) != 1]
    if several:
        raise ValueError(f"--template re-words one-text prompts only; {several[0].id} has {len(several[0].texts)} "
                         f"texts (use it with en-words, en-phrases, zh-chars or words:PATH)")
    return [replace(s, prompt=template.replace("{text}", s.texts[0])) for s in samples]


def suite_jsonl(samples: list[SuiteSample]) -> str:
    return "".join(json.dumps(s.to_json(), ensure_ascii=False) + "\n" for s in samples)


def write_suites(folder: str | Path | None = None, names: list[str] | None = None) -> list[Path]:
    """Rebuild the suites into `folder` (default: the package's data/suites), atomically; the written paths."""
    folder = Path(folder) if folder is not None else _data() / "suites"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names or list(SUITES):
        path = folder / f"{name}.jsonl"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(suite_jsonl(SUITES[name].build()), encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written
