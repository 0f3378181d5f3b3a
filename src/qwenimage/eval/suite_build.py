"""Building the text-rendering suites from their sources, deterministically (version 1, seed 2026).

Suite `name` draws everything from `numpy.random.default_rng([2026, crc32(name)])`, in the order of the code
below; a fifth of each suite, drawn with the same generator, is the `dev` split, the rest `test`.

Sources (all offline): the held-out English words (data/en_words_heldout.txt), sentences written for the
long-text suite (data/long_text_{en,zh}.txt), GB 2312's two levels read from Python's codec, and wordfreq's
Chinese word frequencies. `qwenimage eval suites --write` rebuilds data/suites/*.jsonl; a test checks that
the shipped files equal a rebuild.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
import numpy as np

from qwenimage.eval import prompts
from qwenimage.synth.script import gb2312_tier, is_cjk

SUITE_SEED = 2026
SUITE_VERSION = 1
DEV_SHARE = 0.2
SQUARE = (1024, 1024)
LONG_TEXT_SIZE = (1328, 1328)


@dataclass(frozen=True)
class SuiteSample:
    """One prompt of a suite: what to generate and which texts the image must show."""

    id: str  # "<suite>-<index:04d>": also the image's file name (en-words-0007.png)
    suite: str
    index: int  # position in the suite; the generation seed is base seed + index
    prompt: str
    texts: tuple[str, ...]  # the expected texts, each scored on its own
    language: str  # "en" | "zh"
    size: tuple[int, int]  # width, height
    tags: tuple[str, ...]  # "key:value" labels; "tier:", "regions:", "lang:" tags group the report rows
    split: str  # "dev" | "test"

    def to_json(self) -> dict:
        return {"id": self.id, "suite": self.suite, "index": self.index, "prompt": self.prompt,
                "texts": list(self.texts), "language": self.language, "size": list(self.size),
                "tags": list(self.tags), "split": self.split}

    @classmethod
    def from_json(cls, data: dict) -> "SuiteSample":
        return cls(data["id"], data["suite"], int(data["index"]), data["prompt"], tuple(data["texts"]),
                   data["language"], tuple(data["size"]), tuple(data["tags"]), data["split"])


def suite_rng(name: str) -> np.random.Generator:
    return np.random.default_rng([SUITE_SEED, zlib.crc32(name.encode())])


def _finish(name: str, rows: list[tuple[str, tuple[str, ...], str, tuple[int, int], tuple[str, ...]]],
            rng: np.random.Generator) -> list[SuiteSample]:
    """(prompt, texts, language, size, tags) rows -> samples with ids and a seeded dev/test split."""
    dev = set(rng.permutation(len(rows))[:round(DEV_SHARE * len(rows))].tolist())
    return [SuiteSample(f"{name}-{i:04d}", name, i, prompt, texts, language, size, tags,
                        "dev" if i in dev else "test")
            for i, (prompt, texts, language, size, tags) in enumerate(rows)]


def words_suite(name: str, words: list[str]) -> list[SuiteSample]:
    """One word per prompt, in the given order, each in a template drawn from EN_WORD_TEMPLATES."""
    rng = suite_rng(name)
    rows = []
    for word in words:
        k = int(rng.integers(len(prompts.EN_WORD_TEMPLATES)))
        rows.append((prompts.en_word_prompt(word, k), (word,), "en", SQUARE, (f"template:{k}",)))
    return _finish(name, rows, rng)


def en_phrases(name: str, words: list[str], count: int = 200) -> list[SuiteSample]:
    """2-4 held-out words per phrase (no grammar: a spelling test that language priors cannot guess)."""
    rng = suite_rng(name)
    rows = []
    for _ in range(count):
        k = int(rng.integers(2, 5))
        text = " ".join(words[int(i)] for i in rng.choice(len(words), k, replace=False))
        rows.append((prompts.pick(prompts.EN_PHRASE_TEMPLATES, rng).format(text=text), (text,), "en", SQUARE,
                     (f"words:{k}",)))
    return _finish(name, rows, rng)


def multi_region(name: str, words: list[str], per_count: int = 40) -> list[SuiteSample]:
    """CVTG-2K style: 2, 3, 4 and 5 regions (`per_count` prompts each), each 1-2 held-out words."""
    rng = suite_rng(name)
    rows = []
    for regions in (2, 3, 4, 5):
        for _ in range(per_count):
            scene, places = prompts.pick(prompts.MULTI_REGION_SCENES, rng)
            chosen = [places[int(i)] for i in sorted(rng.choice(len(places), regions, replace=False))]
            pool = iter(rng.permutation(len(words)).tolist())
            texts = tuple(" ".join(words[next(pool)] for _ in range(int(rng.integers(1, 3)))) for _ in chosen)
            rows.append((prompts.multi_region_prompt(scene, chosen, list(texts)), texts, "en", SQUARE,
                         (f"regions:{regions}",)))
    return _finish(name, rows, rng)


def long_text(name: str, sentences: dict[str, list[str]], per_language: int = 40) -> list[SuiteSample]:
    """LongText-Bench style: a paragraph of 3-5 distinct sentences in one of eight scenarios, English and Chinese."""
    rng = suite_rng(name)
    rows = []
    for language in ("en", "zh"):
        pool, joiner = sentences[language], " " if language == "en" else ""
        for _ in range(per_language):
            scenario, template = prompts.pick(prompts.LONG_TEXT_TEMPLATES[language], rng)
            picked = rng.choice(len(pool), int(rng.integers(3, 6)), replace=False)
            text = joiner.join(pool[int(i)] for i in picked)
            rows.append((template.format(text=text), (text,), language, LONG_TEXT_SIZE,
                         (f"lang:{language}", f"scenario:{scenario}")))
    return _finish(name, rows, rng)


def zh_char_tiers() -> dict[str, str]:
    """Stand-ins for the three levels of the Table of General Standard Chinese Characters (not available
    offline): L1 = GB 2312 level 1 (3755), L2 = GB 2312 level 2 (3008), L3 = rare simplified ideographs
    outside GB 2312 (in GBK, not in Big5-HKSCS, Shift-JIS or EUC-KR, and used in wordfreq's Chinese words)."""
    return {"L1": gb2312_tier(1), "L2": gb2312_tier(2), "L3": "".join(sorted(rare_simplified_chars()))}


def rare_simplified_chars() -> set[str]:
    from wordfreq import get_frequency_dict

    common = set(gb2312_tier(1) + gb2312_tier(2))
    used = {ch for word in get_frequency_dict("zh") for ch in word if is_cjk(ch) and ch not in common}
    return {ch for ch in used if _encodes(ch, "gbk") and not any(_encodes(ch, codec) for codec in
                                                                 ("big5hkscs", "shift_jis", "euc_kr"))}


def _encodes(ch: str, codec: str) -> bool:
    try:
        ch.encode(codec)
        return True
    except UnicodeEncodeError:
        return False


def zh_chars(name: str, per_tier: int = 100) -> list[SuiteSample]:
    """ChineseWord style: one character per prompt, `per_tier` distinct characters from each tier."""
    rng = suite_rng(name)
    rows = []
    for tier, chars in zh_char_tiers().items():
        for i in rng.choice(len(chars), per_tier, replace=False):
            ch = chars[int(i)]
            rows.append((prompts.pick(prompts.ZH_CHAR_TEMPLATES, rng).format(text=ch), (ch,), "zh", SQUARE,
                         (f"tier:{tier}",)))
    return _finish(name, rows, rng)


def zh_phrases(name: str, count: int = 200, ranks: tuple[int, int] = (50, 10000)) -> list[SuiteSample]:
    """Chinese words of 2-4 characters (GB 2312 only, wordfreq ranks 50..10000, the synth blocklist applied),
    alone or two of them joined (2-8 characters)."""
    from qwenimage.synth.wordlists import chinese_words

    ranked = [word for word, _ in chinese_words(frozenset(gb2312_tier(1) + gb2312_tier(2)))]
    pool = [word for word in ranked[ranks[0]:ranks[1]] if 2 <= len(word) <= 4]
    rng = suite_rng(name)
    rows, seen = [], set()
    while len(rows) < count:
        parts = [pool[int(i)] for i in rng.choice(len(pool), int(rng.integers(1, 3)), replace=False)]
        text = "".join(parts)
        if text in seen:
            continue
        seen.add(text)
        rows.append((prompts.pick(prompts.ZH_PHRASE_TEMPLATES, rng).format(text=text), (text,), "zh", SQUARE,
                     (f"words:{len(parts)}",)))
    return _finish(name, rows, rng)

