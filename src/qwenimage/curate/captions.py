"""Caption checks for S3: invalid captions (refusals, placeholders, loops), token length, and fusing a raw
web caption with a recaption."""

from __future__ import annotations

import re
from pathlib import Path

from qwenimage.curate.errors import SetupError
from qwenimage.curate.record import Caption

_WORD = re.compile(r"\w+", re.UNICODE)


class CaptionChecker:
    """`problem(text)` names why a caption is unusable (empty, invalid, repetition) or returns None."""

    def __init__(self, patterns: list[str], max_word_repeats: int):
        try:
            self._patterns = [re.compile(p, re.IGNORECASE) for p in patterns]
        except re.error as err:
            raise ValueError(f"s3.invalid_patterns: bad regular expression: {err}") from err
        self.max_word_repeats = max_word_repeats

    def problem(self, text: str) -> str | None:
        if not text or not _WORD.search(text):
            return "empty_caption"
        if any(p.search(text) for p in self._patterns):
            return "invalid_caption"
        if _longest_run(_WORD.findall(text.lower())) > self.max_word_repeats:
            return "repetitive_caption"
        return None


def _longest_run(words: list[str]) -> int:
    best = run = 0
    previous = None
    for word in words:
        run = run + 1 if word == previous else 1
        best, previous = max(best, run), word
    return best


class TokenCounter:
    """Token counts with a `tokenizers` tokenizer.json (the Qwen2 tokenizer by default); loads lazily."""

    def __init__(self, folder: str | None = None):
        self.folder = folder
        self._tokenizer = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tokenizer": None}

    def _load(self):
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            from qwenimage.tiny import qwen_tokenizer_dir

            path = Path(self.folder) if self.folder else qwen_tokenizer_dir()
            path = path / "tokenizer.json" if path.is_dir() else path
            if not path.is_file():
                raise SetupError(f"s3.tokenizer: no tokenizer.json at {path}")
            self._tokenizer = Tokenizer.from_file(str(path))
        return self._tokenizer

    def count(self, text: str) -> int:
        return len(self._load().encode(text, add_special_tokens=False).ids)

    def tokens(self, text: str) -> list[str]:
        return self._load().encode(text, add_special_tokens=False).tokens


def fuse(raw: str, recaption: str) -> str:
    """The recaption, followed by the raw caption when it adds something (names, titles, tags).

    The report keeps raw captions for short prompts and knowledge (plant names, cartoon IPs) and trains
    on fused captions too; how it fuses is not published. Here: recaption + ' (' raw ')' unless the
    recaption already contains the raw text.
    """
    raw, recaption = raw.strip(), recaption.strip()
    if not raw or raw.lower() in recaption.lower():
        return recaption
    if not recaption:
        return raw
    return f"{recaption.rstrip()} ({raw.rstrip('.')})"


def choose_caption(captions: list[Caption], preference: str) -> Caption | None:
    """The caption written to the output: `preference` raw | recaption | fused | auto."""
    by_source = {c.source: c for c in captions}
    if preference == "auto":
        for source in ("fused", "recaption", "raw"):
            if source in by_source:
                return by_source[source]
        return None
    return by_source.get(preference)
