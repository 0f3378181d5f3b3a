"""Measure qwenimage-mini's text-edit run (configs/train/mini_edit.yaml) at every exported checkpoint.

    python scripts/mini_edit_progress.py [--run outputs/mini/train-edit] [--watch 600] [--at 500 1000]
    python scripts/mini_edit_progress.py --run outputs/mini/train-edit-mono --no-suite \
        --pairs mono=data/mini/edit-mono-eval fixed=data/mini/edit-mono-eval-fixed

For every `exports/step-N/transformer` not measured yet: assemble a pipeline with the edit base (`qwenimage mini
assemble --base outputs/mini/edit-base`), edit the `text-edit` suite's sources at 128 px (--size) and score them
(`qwenimage eval edit --suite text-edit`: OCR of the new text inside the region, PSNR outside it), measure
text-to-image on the held-out `en-words` suite (`qwenimage eval text`) unless --no-t2i, and append one line to
`<run>/edit-curve.jsonl`. --keep-unedited T also scores the edits with the source's pixels pasted back outside the
area they changed (`qwenimage edit --keep-unedited T`: *_keep fields). With --watch S it then waits S seconds and
looks again, until the run's last export (stages' steps) is measured. --pairs NAME=DIR also edits other pairs
(`qwenimage eval edit --pairs DIR --model SNAP`, e.g. held-out edit pairs written by the synth engine): NAME_*
fields; --no-suite skips the suite. Acceptance (issue 18): ocr_exact >= 0.8 and psnr >= 25 dB.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mini_runs import assemble, last_step, measure_new, qwenimage


# at 128 px the suite's 29th English pair ("GOOD MORNING" -> "GOOD NIGHT") fits no medium: the first 28 pairs
SUITE_PAIRS = 28


def value(results: Path, metric: str) -> float | str | None:
    """A metric's value in an `eval edit` results.json (pooled PSNR may be "inf")."""
    return json.loads(results.read_text())["summary"][metric]["value"]


def suite_scores(out: Path, common: list[str], args: argparse.Namespace) -> dict:
    """The text-edit suite's scores of one snapshot (and with --keep-unedited, the *_keep ones)."""
    metrics = ("ocr_exact", "ocr_agreement", "psnr")
    qwenimage("eval", "edit", "--suite", "text-edit", "--lang", "en", "--n", str(args.n),
              "--out", str(out / "text-edit"), *common)
    entry = {m: value(out / "text-edit" / "results.json", m) for m in metrics}
    if args.keep_unedited is not None:  # the same edits with the source pasted back outside the changed area
        qwenimage("eval", "edit", "--suite", "text-edit", "--lang", "en", "--n", str(args.n), "--keep-unedited",
                  str(args.keep_unedited), "--out", str(out / "text-edit-keep"), *common)
        kept = out / "text-edit-keep" / "results.json"
        entry.update({f"{m}_keep": value(kept, m) for m in ("ocr_exact", "ocr_agreement", "psnr")},
                     keep_unedited=args.keep_unedited)
    return entry


def evaluate(run: Path, export: Path, args: argparse.Namespace) -> dict:
    snap = assemble(args.base, export, run / "snaps" / export.name)
    out = run / "eval-edit" / export.name
    common = ["--model", str(snap), "--size", str(args.size), "--steps", str(args.steps), "--cfg", str(args.cfg),
              "--dtype", "fp32", "--batch-size", str(args.batch_size), "--no-progress"]
    metrics = ("ocr_exact", "ocr_agreement", "psnr", "target_psnr", "target_delta_e")  # target_*: to the truth
    entry = {"step": int(export.name.split("-")[1])}
    for name, folder in args.pairs:
        qwenimage("eval", "edit", "--pairs", folder, "--out", str(out / name), *common)
        entry.update({f"{name}_{m}": value(out / name / "results.json", m) for m in metrics})
    if not args.no_suite:
        entry.update(suite_scores(out, common, args))
    if not args.no_t2i:
        qwenimage("eval", "text", "--suite", "en-words", "--n", "50", "--out", str(out / "en-words"), *common)
        suites = json.loads((out / "en-words" / "results.json").read_text())["suites"]
        exact = next(v for k, v in suites.items() if k.startswith("en-words"))["metrics"]["exact_match"]
        entry["t2i_heldout_exact"] = exact["value"] if isinstance(exact, dict) else exact
    return entry


def named_folder(spec: str) -> tuple[str, str]:
    name, sep, folder = spec.partition("=")
    if not sep or not name.isidentifier() or not Path(folder).is_dir():
        raise argparse.ArgumentTypeError(f"{spec!r}: expected NAME=DIR with an existing DIR")
    return name, folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("outputs/mini/train-edit"))
    parser.add_argument("--base", type=Path, default=Path("outputs/mini/edit-base"))
    parser.add_argument("--n", type=int, default=SUITE_PAIRS, help=f"suite pairs (default {SUITE_PAIRS}: all that "
                                                                      "render at 128 px)")
    parser.add_argument("--size", type=int, default=128, help="side the suite renders and edits at (256 for a "
                                                               "run on configs/train/mini_edit_256.yaml)")
    parser.add_argument("--steps", type=int, default=20, help="sampling steps of each edit")
    parser.add_argument("--cfg", type=float, default=1.0, help="true CFG (1: none; edits train no dropout)")
    parser.add_argument("--batch-size", type=int, default=1, help="edits (or images) per pipeline call (the scores "
                        "are the same; on 2 CPU threads 10 a call was no faster than 1)")
    parser.add_argument("--no-t2i", action="store_true", help="skip the text-to-image check (en-words)")
    parser.add_argument("--keep-unedited", type=float, default=None, metavar="T",
                        help="also score the edits with --keep-unedited T (the source pasted back outside the edit)")
    parser.add_argument("--pairs", nargs="+", type=named_folder, default=[], metavar="NAME=DIR",
                        help="also edit these pairs (a pairs folder or a synth folder of edit pairs)")
    parser.add_argument("--no-suite", action="store_true", help="skip the text-edit suite (--no-t2i skips the text-to-image check)")
    parser.add_argument("--watch", type=float, default=0, help="look for new exports every this many seconds")
    parser.add_argument("--at", type=int, nargs="+", default=None, metavar="STEP",
                        help="measure only the exports of these steps (default: every one)")
    args = parser.parse_args()
    while True:
        curve = measure_new(args.run, "edit-curve.jsonl", lambda export: evaluate(args.run, export, args),
                            None if args.at is None else set(args.at))
        last = last_step(args.run) if args.at is None else max(args.at)
        if not args.watch or any(entry["step"] >= last for entry in curve):
            return 0
        time.sleep(args.watch)


if __name__ == "__main__":
    raise SystemExit(main())
