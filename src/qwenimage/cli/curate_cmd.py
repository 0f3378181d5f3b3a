"""`qwenimage curate`: run the seven-stage curation pipeline over image folders, manifests, Parquet files
and WebDataset shards; write the kept records as shards and a funnel report."""

from __future__ import annotations

import argparse
from pathlib import Path

from qwenimage.curate.config import CurateConfig
from qwenimage.curate.config_docs import documented_keys

CONFIG_PREFIX = "config:"

DESCRIPTION = """Filter image-text data through the seven stages of the Qwen-Image report (S1 preprocessing,
S2 quality, S3 alignment, S4 text rendering, S5 640p, S6 category balance, S7 multi-scale buckets) and write
the survivors as WebDataset or Parquet shards under OUT/shards/stage-K (K = stages passed), every record's
outcome under OUT/records, and a funnel report at OUT/report/index.html. A killed run resumes where it
stopped when started again with the same arguments.

Inputs: image folders (with x.txt / x.json sidecars), .jsonl/.csv/.tsv manifests, .parquet files, .tar
WebDataset shards (img2dataset's layout), and the synth engine's synth-*.tar shards (entering at S4)."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("curate", help="filter, balance and bucket image-text data (seven stages)",
                            description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                            usage="qwenimage curate --input PATH [PATH ...] --out DIR [--config YAML] "
                                  "[--executor local|ray] [--workers N] [--set KEY=VALUE | --KEY=VALUE ...]")
    parser.add_argument("--config", type=Path, help="YAML config (default: configs/curate/default.yaml)")
    parser.add_argument("--input", nargs="+", action="extend", default=[], metavar="PATH", help="inputs")
    parser.add_argument("--out", type=Path, help="output folder (created; reused to resume)")
    parser.add_argument("--executor", choices=["local", "ray"], help="shortcut for --executor.kind")
    parser.add_argument("--workers", type=int, help="shortcut for --executor.workers (0 = all cores)")
    parser.add_argument("--ray-address", help="shortcut for --executor.ray_address (join a Ray cluster)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set s2.min_clarity=80 (repeatable)")
    parser.add_argument("--overwrite", action="store_true", help="discard an earlier run in OUT instead of resuming")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    keys = parser.add_argument_group("config keys", "every key of the YAML config, as --KEY=VALUE (YAML values)")
    for key, _, doc in documented_keys(CurateConfig):
        keys.add_argument(f"--{key}", dest=CONFIG_PREFIX + key, default=argparse.SUPPRESS, metavar="V",
                          help=doc.replace("%", "%%"))
    parser.set_defaults(run=run_curate)


def overrides(args: argparse.Namespace) -> list[str]:
    """--set items, then --KEY=VALUE options, then the shortcut flags."""
    items = list(args.set)
    items += [f"{k[len(CONFIG_PREFIX):]}={v}" for k, v in vars(args).items() if k.startswith(CONFIG_PREFIX)]
    for flag, key in (("executor", "executor.kind"), ("workers", "executor.workers"),
                      ("ray_address", "executor.ray_address")):
        if getattr(args, flag) is not None:
            items.append(f"{key}={getattr(args, flag)}")
    return items


def run_curate(args: argparse.Namespace) -> int:
    from qwenimage.curate.config import load_curate_config
    from qwenimage.curate.config_docs import config_yaml

    config = load_curate_config(args.config, overrides(args))
    if args.print_config:
        print(config_yaml(config), end="")
        return 0
    if not args.input or args.out is None:
        raise ValueError("--input and --out are required (or --print-config)")
    from qwenimage.curate.pipeline import Curation

    summary = Curation(config, args.input, args.out, overwrite=args.overwrite).run()
    print(f"{summary.records} records from {summary.shards} shards in {summary.seconds:.1f}s"
          f"{' (resumed)' if summary.resumed else ''}: {summary.kept} passed all seven stages, "
          f"{summary.written} written under {Path(args.out) / 'shards'}")
    print(f"funnel report: {summary.report}")
    return 0
