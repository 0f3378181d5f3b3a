"""A synthetic-text job: what to render, how many, at which size, from which seed, and how to store it.

Everything that decides the bytes of the output is a field of `SynthJob`; how the work is spread
(workers, executor) is not, so the same job gives the same shards on one core or on a Ray cluster.

Sample `i` draws its strategy, language and whether it is OCR-verified from `default_rng([seed, i])`;
attempt `a` at rendering it uses `default_rng([seed, i, a])`; a discarded attempt moves to `a + 1`.
Shard `k` holds the indices `[k * shard_size, (k + 1) * shard_size)`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np

from qwenimage.synth.config import LANGUAGES

STRATEGY_FACTORY = "qwenimage.synth.worker:build_renderer_strategy"
FORMATS = ("wds", "folder")
MIX = ("complex", "compositional", "pure")  # what "mix" means; the renderer's STRATEGIES has the same names
MAX_SIDE = 4096  # the largest width or height (a 4096x4096 RGB canvas is 48 MiB; the model trains up to 1328)


@dataclass
class SynthJob:
    count: int
    strategies: dict[str, float] = field(default_factory=lambda: dict.fromkeys(MIX, 1.0))  # name -> weight
    languages: dict[str, float] = field(default_factory=lambda: {"zh": 1.0, "en": 1.0})  # code -> weight
    width: int = 512
    height: int = 512
    seed: int = 0
    shard_size: int = 1000
    format: str = "wds"  # WebDataset tar shards, or one plain folder per shard
    ocr_threshold: float = 0.8  # keep a verified sample when text_agreement(text, OCR) >= this
    # share of the samples that are OCR-verified (chosen per index). OCR costs ~0.5-0.7 CPU-s a sample, 30x a
    # render: 2% keeps the default job above 20 samples/s per core (benchmarks/bench_synth.py) and still reads
    # 200 samples in 10,000 for the agreement figures of summary.json; 1.0 checks every sample
    verify_fraction: float = 0.02
    max_attempts: int = 10  # renders of one index before it is given up (and reported as failed)
    key_prefix: str = ""
    png_compress_level: int = 3  # zlib level: 3 encodes about twice as fast as 6, files ~2-6% larger
    synth: dict = field(default_factory=dict)  # options of the renderer's SynthConfig
    strategy_factory: str = STRATEGY_FACTORY  # "module:function", function(name, synth options) -> Strategy

    def __post_init__(self):
        if isinstance(self.strategies, str):  # "mix", "pure", "pure:2,complex:1" (from YAML)
            self.strategies = parse_weights(self.strategies, "strategy", MIX if self.strategies == "mix" else ())
        if isinstance(self.languages, str):
            self.languages = parse_weights(self.languages, "language")
        self.strategies = _normalized_weights(self.strategies, "strategy")
        self.languages = _normalized_weights(self.languages, "language")
        unknown = sorted(set(self.languages) - set(LANGUAGES))
        checks = [
            (self.count >= 1, f"count must be at least 1, got {self.count}"),
            (self.width >= 16 and self.height >= 16, f"size {self.width}x{self.height} is below 16x16"),
            (self.width <= MAX_SIDE and self.height <= MAX_SIDE,
             f"size {self.width}x{self.height} is above the maximum of {MAX_SIDE}x{MAX_SIDE}"),
            (not unknown, f"unknown language {', '.join(map(repr, unknown))}: choose from {', '.join(LANGUAGES)}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.shard_size >= 1, f"shard size must be at least 1, got {self.shard_size}"),
            (self.format in FORMATS, f"format must be one of {', '.join(FORMATS)}, got {self.format!r}"),
            (0.0 <= self.ocr_threshold <= 1.0, f"OCR threshold must be in [0, 1], got {self.ocr_threshold}"),
            (0.0 <= self.verify_fraction <= 1.0, f"verify fraction must be in [0, 1], got {self.verify_fraction}"),
            (self.max_attempts >= 1, f"max attempts must be at least 1, got {self.max_attempts}"),
            (0 <= self.png_compress_level <= 9, f"PNG compress level must be in 0..9, got {self.png_compress_level}"),
            (":" in self.strategy_factory, f"strategy factory must be 'module:function', got {self.strategy_factory!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def num_shards(self) -> int:
        return -(-self.count // self.shard_size)

    def shard_indices(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.count))

    def key(self, index: int) -> str:
        return f"{self.key_prefix}{index:08d}"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "SynthJob":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown synth job fields: {', '.join(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class SamplePlan:
    index: int
    strategy: str
    language: str
    verify: bool  # OCR-check this sample


def plan_sample(job: SynthJob, index: int) -> SamplePlan:
    """The strategy, language and OCR decision of sample `index`; depends only on (seed, index)."""
    rng = np.random.default_rng([job.seed, index])
    strategy = _weighted_pick(job.strategies, rng.random())
    language = _weighted_pick(job.languages, rng.random())
    return SamplePlan(index, strategy, language, verify=bool(rng.random() < job.verify_fraction))


def attempt_rng(job: SynthJob, index: int, attempt: int) -> np.random.Generator:
    return np.random.default_rng([job.seed, index, attempt])


def parse_weights(spec: str, what: str, everything: tuple[str, ...] = ()) -> dict[str, float]:
    """'zh,en' -> equal weights; 'zh:3,en:1' -> 3:1; 'mix' -> every name in `everything` equally."""
    if spec.strip() == "mix" and everything:
        return {name: 1.0 for name in everything}
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, weight = part.partition(":")
        try:
            weights[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"bad {what} weight in {part!r}: expected NAME or NAME:WEIGHT") from None
    if everything:
        unknown = [name for name in weights if name not in everything]
        if unknown:
            raise ValueError(f"unknown {what} {', '.join(map(repr, unknown))}: choose from {', '.join(everything)}")
    return _normalized_weights(weights, what)


def _normalized_weights(weights: dict[str, float], what: str) -> dict[str, float]:
    """Positive weights summing to 1, sorted by name (so 'en,zh' and 'zh,en' give the same job)."""
    if not weights:
        raise ValueError(f"no {what} given")
    bad = {name: w for name, w in weights.items() if not w > 0 or not name}
    if bad:
        raise ValueError(f"{what} weights must be positive, got {bad}")
    total = float(sum(weights.values()))
    return {name: round(weights[name] / total, 12) for name in sorted(weights)}


def _weighted_pick(weights: dict[str, float], u: float) -> str:
    cumulative = 0.0
    for name, weight in weights.items():
        cumulative += weight
        if u < cumulative:
            return name
    return next(reversed(weights))
