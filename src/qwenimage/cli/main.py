"""`qwenimage` command line: one entry point, one sub-command per job."""

from __future__ import annotations

import argparse
import logging
import sys

from qwenimage import __version__
from qwenimage.cli import (curate_cmd, eval_cmd, generate_cmd, mini_cmd, model_cmd, serve_cmd, synth_cmd,
                           train_cmd, ui_cmd)


SUBCOMMANDS = [generate_cmd, model_cmd, synth_cmd, curate_cmd, train_cmd, eval_cmd, mini_cmd, serve_cmd, ui_cmd]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qwenimage", description="Qwen-Image: model, inference, data and training.")
    parser.add_argument("--version", action="version", version=f"qwenimage {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args) or 0)
    except (ValueError, OSError) as err:  # bad input: config/checkpoint/image errors carry a clear message
        print(f"qwenimage {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: outputs are written atomically, so nothing half-written is left
        print(f"qwenimage {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
