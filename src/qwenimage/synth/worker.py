"""Rendering one shard: sample plans -> strategy renders (with retries) -> OCR check -> shard + stats.

The OCR check compares the rendered text with what OCR reads, letter case included, except for samples
drawn in a face that shows every letter as a capital (`extra["capitals_forced"]`). Each shard records its
wall time and the CPU time of its process (`seconds["cpu"]`), from which rates per core are computed.

One `ShardRenderer` lives in each worker process: the strategies (and the OCR engine) are built once and
reused for every shard the process is given. `render_shard` is the whole unit of work, the same for the
in-process, multiprocessing and Ray executors.
"""

from __future__ import annotations

import importlib
import io
import logging
import re
import time
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from qwenimage.synth.job import SynthJob, attempt_rng, plan_sample
from qwenimage.synth.shards import ShardWriter, dumps_json, shard_path, stats_path, write_json_atomic

log = logging.getLogger(__name__)

OCR_MISMATCH = "ocr_mismatch"
SOURCE_EXT = "source.png"  # an edit pair's source image, beside key.png (records.py reads it)


def build_renderer_strategy(name: str, options: dict):
    """The default strategy factory: the renderer's strategies with `SynthConfig(**options)`."""
    from qwenimage.synth.strategies import build_strategy

    return build_strategy(name, synth_config(options))


def synth_config(options: dict):
    from qwenimage.synth.config import SynthConfig

    try:
        return SynthConfig.from_dict(options)
    except TypeError as err:  # a value of the wrong kind
        raise ValueError(f"bad synth option: {err}") from None


def resolved_synth_options(job: SynthJob) -> dict:
    """The renderer options with their defaults filled in (recorded in job.json); checks the job's names."""
    load_factory(job.strategy_factory)
    if job.strategy_factory != build_renderer_strategy.__module__ + ":" + build_renderer_strategy.__name__:
        return dict(job.synth)
    from qwenimage.synth.strategies import STRATEGIES

    unknown = [name for name in job.strategies if name not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategy {', '.join(unknown)}: choose from {', '.join(STRATEGIES)}")
    return synth_config(job.synth).to_dict()


def load_factory(spec: str) -> Callable:
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot load strategy factory {spec!r}: {err}") from None


@dataclass
class ShardStats:
    """What happened in one shard; `stats/synth-%06d.json`, summed into summary.json."""

    shard: int
    keys: list[str] = field(default_factory=list)  # written, in order
    failed: dict[str, str] = field(default_factory=dict)  # key -> last discard reason, after max_attempts
    attempts: int = 0
    discards: dict[str, int] = field(default_factory=dict)  # reason -> discarded attempts
    by_strategy: dict[str, int] = field(default_factory=dict)
    by_language: dict[str, int] = field(default_factory=dict)
    captions_quoting_text: int = 0  # written samples whose caption contains their exact text
    verified: int = 0  # OCR reads (one per verified attempt)
    ocr_kept: dict[str, list[float]] = field(default_factory=dict)  # strategy -> scores of written samples
    ocr_all: dict[str, list[float]] = field(default_factory=dict)  # strategy -> scores of every OCR read
    characters: dict[str, str] = field(default_factory=dict)  # language -> distinct characters written
    seconds: dict[str, float] = field(default_factory=dict)  # total (wall), cpu, render, ocr, encode

    def count(self, table: dict, key: str, n: int = 1) -> None:
        table[key] = table.get(key, 0) + n

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ShardStats":
        return cls(**data)


class ShardRenderer:
    def __init__(self, job: SynthJob):
        self.job = job
        factory = load_factory(job.strategy_factory)
        self.strategies = {name: factory(name, dict(job.synth)) for name in job.strategies}
        self._logged_errors: set[str] = set()

    def render_shard(self, out: Path, shard: int, on_sample: Callable[[int], None] | None = None) -> ShardStats:
        """Render shard `shard` of the job into `out` (temp file, then rename); returns its stats."""
        job, started, cpu = self.job, time.perf_counter(), time.process_time()
        stats = ShardStats(shard, seconds={"render": 0.0, "ocr": 0.0, "encode": 0.0})
        chars: dict[str, set[str]] = {}
        writer = ShardWriter(shard_path(out, shard, job.format), job.format)
        try:
            for index in job.shard_indices(shard):
                files = self.render_index(index, stats, chars)
                if files is not None:
                    writer.add(job.key(index), files)
                    stats.keys.append(job.key(index))
                if on_sample is not None:
                    on_sample(1)
            stats.characters = {lang: "".join(sorted(c)) for lang, c in sorted(chars.items())}
            stats.seconds["total"] = time.perf_counter() - started
            stats.seconds["cpu"] = time.process_time() - cpu  # this process's CPU time, OCR threads included
            write_json_atomic(stats_path(out, shard), stats.to_json())
            writer.commit()  # the shard file appears last: it marks the shard complete
        except BaseException:
            writer.abort()
            raise
        return stats

    def render_index(self, index: int, stats: ShardStats, chars: dict[str, set[str]]) -> dict[str, bytes] | None:
        """Try sample `index` up to max_attempts times; the files of the first kept attempt, or None."""
        job, plan = self.job, plan_sample(self.job, index)
        reason = ""
        for attempt in range(job.max_attempts):
            stats.attempts += 1
            sample, reason = self._render(plan, attempt, stats)
            if sample is None:
                stats.count(stats.discards, reason)
                continue
            ocr = self._verify(sample, plan.strategy, stats) if plan.verify else None
            if ocr is not None and not ocr["passed"]:
                reason = OCR_MISMATCH
                stats.count(stats.discards, reason)
                continue
            self._tally(sample, plan, ocr, stats, chars)
            return self._encode(sample, index, attempt, ocr, stats)
        stats.failed[job.key(index)] = reason
        return None

    def _render(self, plan, attempt: int, stats: ShardStats):
        from qwenimage.synth.sample import Discard

        started = time.perf_counter()
        rng = attempt_rng(self.job, plan.index, attempt)
        try:
            sample = self.strategies[plan.strategy].render(rng, self.job.width, self.job.height, plan.language)
            return sample, ""
        except Discard as discard:
            return None, discard.reason
        except Exception as err:  # a render error drops the paragraph, like a missing glyph
            reason = f"error:{type(err).__name__}"
            if reason not in self._logged_errors:
                self._logged_errors.add(reason)
                log.warning("sample %d (%s/%s): %s", plan.index, plan.strategy, plan.language, reason, exc_info=True)
            return None, reason
        finally:
            stats.seconds["render"] += time.perf_counter() - started

    def _verify(self, sample, strategy: str, stats: ShardStats) -> dict:
        started = time.perf_counter()
        result = ocr_engine().read(sample.image)
        case_sensitive = not sample.extra.get("capitals_forced", False)
        score = round(agreement(sample.text, result.text, case_sensitive), 4)
        stats.verified += 1
        stats.ocr_all.setdefault(strategy, []).append(score)
        stats.seconds["ocr"] += time.perf_counter() - started
        return {**result.to_json(), "score": score, "case_sensitive": case_sensitive,
                "threshold": self.job.ocr_threshold, "passed": score >= self.job.ocr_threshold}

    def _tally(self, sample, plan, ocr: dict | None, stats: ShardStats, chars: dict[str, set[str]]) -> None:
        stats.count(stats.by_strategy, plan.strategy)
        stats.count(stats.by_language, sample.language)  # may be "mixed" where plan.language was zh or en
        stats.captions_quoting_text += int(sample.caption_quotes_text())
        if ocr is not None:
            stats.ocr_kept.setdefault(plan.strategy, []).append(ocr["score"])
        chars.setdefault(sample.language, set()).update(c for c in sample.text if not c.isspace())

    def _encode(self, sample, index: int, attempt: int, ocr: dict | None, stats: ShardStats) -> dict[str, bytes]:
        started = time.perf_counter()
        png = io.BytesIO()
        sample.image.convert("RGB").save(png, format="PNG", compress_level=self.job.png_compress_level)
        record = {**sample.metadata(), "key": self.job.key(index), "index": index, "attempt": attempt, "ocr": ocr}
        files = {"png": png.getvalue(), "json": dumps_json(record), "txt": sample.caption.encode("utf-8")}
        if sample.source is not None:  # an edit pair: the image the instruction edits
            source = io.BytesIO()
            sample.source.convert("RGB").save(source, format="PNG", compress_level=self.job.png_compress_level)
            files[SOURCE_EXT] = source.getvalue()
        stats.seconds["encode"] += time.perf_counter() - started
        return files


def agreement(expected: str, recognized: str, case_sensitive: bool = True) -> float:
    """1 - NED between the texts after NFKC and without whitespace (OCR drops spaces between CJK runs);
    letter case counts unless `case_sensitive` is False (a face that draws every letter as a capital)."""
    from qwenimage.ocr import normalized_edit_distance, text_agreement

    if not case_sensitive:
        return text_agreement(expected, recognized)
    plain = [re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)) for text in (expected, recognized)]
    return 1.0 - normalized_edit_distance(*plain)


_OCR = []  # the process's OCR engine (its models load once, on first use)


def ocr_engine():
    if not _OCR:
        from qwenimage.ocr import OcrEngine

        _OCR.append(OcrEngine(threads=1))  # one thread per worker process: workers share the cores
    return _OCR[0]


_RENDERERS: dict[str, ShardRenderer] = {}  # per process: one renderer per job (strategies built once)


def render_shard_task(job_json: dict, out: str, shard: int, on_sample=None) -> dict:
    """The unit of work of every executor: render one shard, return its stats as JSON."""
    key = dumps_json(job_json).decode()
    if key not in _RENDERERS:
        _RENDERERS.clear()
        _RENDERERS[key] = ShardRenderer(SynthJob.from_json(job_json))
    return _RENDERERS[key].render_shard(Path(out), shard, on_sample).to_json()
