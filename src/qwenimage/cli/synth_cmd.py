"""`qwenimage synth`: synthetic text-rendering data (pure, compositional, complex) into WebDataset shards.

    qwenimage synth --strategy mix --lang zh,en --count 10000 --size 512 --out data/synth --workers 8
    qwenimage synth --config configs/synth/mix.yaml --out data/synth seed=3 synth.KEY=VALUE
    qwenimage synth --strategy mix --count 10000 --out data/synth --exclude-words suite:en-words

Flags override the YAML config, which overrides the defaults; KEY=VALUE arguments set any job field
(`synth.*` are the renderer's options). Running again on the same --out resumes: finished shards are
kept, half-written ones redone; a folder holding a different job is refused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# flag -> job field, for the flags that map one to one
_FIELDS = {"count": "count", "seed": "seed", "shard_size": "shard_size", "format": "format",
           "ocr_threshold": "ocr_threshold", "verify_fraction": "verify_fraction", "max_attempts": "max_attempts"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="render synthetic text images with exact-text captions",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strategy", default=None, metavar="NAME[:W],...",
                   help="pure, compositional, complex, words, edit_pairs, mix (the first three equally), or "
                        "weighted: pure:2,complex:1")
    p.add_argument("--lang", default=None, metavar="LANG[:W],...",
                   help="languages with weights: zh, en, mixed (default zh,en)")
    p.add_argument("--count", type=int, default=None, help="number of samples")
    p.add_argument("--size", default=None, metavar="N|WxH",
                   help="image size: 512 or 768x512 (default 512; each side 16..4096)")
    p.add_argument("--out", type=Path, required=True, help="output folder (resumed when it holds this job)")
    p.add_argument("--seed", type=int, default=None, help="the same seed gives byte-identical shards (default 0)")
    p.add_argument("--shard-size", type=int, default=None, help="samples per shard (default 1000)")
    p.add_argument("--format", default=None, help="wds (tar shards, default) or folder")
    p.add_argument("--ocr-threshold", type=float, default=None,
                   help="keep an OCR-verified sample when 1 - NED(text, OCR) >= this (default 0.8)")
    p.add_argument("--verify-fraction", type=float, default=None,
                   help="share of samples verified by OCR, ~0.5 s each per core (default 0.02: the default "
                        "job then makes >= 20 samples/s per core; 1.0 checks every sample)")
    p.add_argument("--max-attempts", type=int, default=None, help="renders of one sample before giving up (10)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (or Ray CPUs); one shard per task")
    p.add_argument("--executor", default="local", help="local (process pool) or ray")
    p.add_argument("--ray-address", default=None, help="join a running Ray cluster (default: start one here)")
    p.add_argument("--report-samples", type=int, default=12, help="thumbnails per strategy in report/ (0: none)")
    p.add_argument("--exclude-words", action="append", default=[], metavar="suite:NAME|PATH",
                   help="never draw these English words (whole words, any case): an eval suite's held-out list "
                        "(suite:en-words) or a word file; repeatable")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--config", type=Path, default=None, help="YAML job config (fields of SynthJob)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="job fields, e.g. synth.KEY=VALUE")
    p.set_defaults(run=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from qwenimage.synth.report import format_summary
    from qwenimage.synth.runner import RunOptions, run_job

    job = job_from_args(args)
    options = RunOptions(workers=args.workers, executor=args.executor, ray_address=args.ray_address,
                         progress=not args.no_progress, report_samples=args.report_samples)
    if job.num_shards < options.workers:
        print(f"note: {job.num_shards} shard(s) for {options.workers} workers: lower --shard-size to use them all")
    summary = run_job(job, args.out, options)
    print(format_summary(summary))
    print(f"shards, summary.json and report/ in {args.out}")
    if summary["written"] == 0:  # nothing to train on: a failed run, whatever the reasons
        reasons = ", ".join(f"{reason} x{n}" for reason, n in summary["discards"].items()) or "none recorded"
        print(f"qwenimage synth: error: wrote 0 of {job.count} samples (discarded attempts: {reasons}); "
              f"see {args.out / 'summary.json'}", file=sys.stderr)
        return 1
    return 0


def job_from_args(args: argparse.Namespace):
    """SynthJob from defaults < --config YAML < KEY=VALUE overrides < flags."""
    import yaml

    from qwenimage.jobconfig import from_dict, parse_override, set_dotted
    from qwenimage.synth.job import MIX, SynthJob, parse_weights

    raw: dict = {}
    if args.config is not None:
        if not args.config.is_file():
            raise ValueError(f"config file not found: {args.config}")
        raw = yaml.safe_load(args.config.read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{args.config}: the top level must be a mapping")
    for override in args.overrides:
        set_dotted(raw, *parse_override(override))
    raw.update({field: getattr(args, flag) for flag, field in _FIELDS.items() if getattr(args, flag) is not None})
    if args.strategy is not None:  # names are checked against the renderer's strategies when the job starts
        raw["strategies"] = parse_weights(args.strategy, "strategy", everything=MIX if args.strategy == "mix" else ())
    if args.lang is not None:
        raw["languages"] = parse_weights(args.lang, "language")
    if args.size is not None:
        raw["width"], raw["height"] = parse_size(args.size)
    if args.exclude_words:
        from qwenimage.eval.suites import heldout_words

        synth = raw.setdefault("synth", {})
        words = set(synth.get("exclude_words") or []).union(*(heldout_words(spec) for spec in args.exclude_words))
        synth["exclude_words"] = sorted(words)
    if "count" not in raw:
        raise ValueError("no sample count: pass --count N (or count: N in --config)")
    return from_dict(SynthJob, raw, prefix="")


def parse_size(text: str) -> tuple[int, int]:
    """'512' -> (512, 512); '768x512' -> (768, 512) as width x height."""
    width, sep, height = text.lower().partition("x")
    try:
        return (int(width), int(height)) if sep else (int(width), int(width))
    except ValueError:
        raise ValueError(f"bad --size {text!r}: expected N or WIDTHxHEIGHT, e.g. 512 or 768x512") from None
