"""Measure qwenimage-mini's text-edit run (configs/train/mini_edit.yaml) at every exported checkpoint.

    python scripts/mini_edit_progress.py [--run outputs/mini/train-edit] [--watch 600] [--at 500 1000]
    python scripts/mini_edit_progress.py --run outputs/mini/train-edit-mono --no-suite \
        --pairs mono=data/mini/edit-mono-eval fixed=data/mini/edit-mono-eval-fixed

For every `exports/step-N/transformer` not measured yet: assemble a pipeline with the edit base (`qwenimage mini
assemble --base outputs/mini/edit-base`), edit the `text-edit` suite's sources at 128 px (--size) and score them
(`qwenimage eval edit --suite text-edit`: OCR of the new text inside the region, PSNR outside it), measure
text-to-image on the held-out `en-words` suite (`qwenimage eval text`) unless --no-t2i, and append one line to
`<run>/edit-curve.jsonl`. --keep-unedited T also scores the edits with the source's pixels pasted back outside the
area they changed (`qwenimage edit --keep-unedited T`: *_keep fields), --text-focus with the word edited on the
model's own canvas (`qwenimage edit --text-focus`: *_focus fields). With --watch S it then waits S seconds and
looks again, until the run's last export (stages' steps) is measured. --pairs NAME=DIR also edits other pairs
(`qwenimage eval edit --pairs DIR --model SNAP`, e.g. held-out edit pairs written by the synth engine): NAME_*
fields; --no-suite skips the suite. --plot PNG redraws the curve there after each measurement (--before RUN puts an
earlier run's curve in front of it, this run's steps counted on from --offset, the step it started from).
Acceptance (issue 18): ocr_exact >= 0.8 and psnr >= 25 dB.
"""

from __future__ import annotations

import argparse
import json
import math
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
    if args.text_focus:  # the same pairs edited on the model's own canvas (the snapshot's qwenimage.json text_focus)
        qwenimage("eval", "edit", "--suite", "text-edit", "--lang", "en", "--n", str(args.n), "--text-focus",
                  "--out", str(out / "text-edit-focus"), *common)
        focused = out / "text-edit-focus" / "results.json"
        entry.update({f"{m}_focus": value(focused, m) for m in metrics})
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


def pair_sets(curve: list[dict]) -> list[str]:
    """The names whose scores the curve holds: "suite" for the text-edit suite's, NAME for --pairs NAME=DIR."""
    names = {key[: -len("_ocr_exact")] for entry in curve for key in entry if key.endswith("_ocr_exact")}
    names.discard("ocr_exact")
    suite = any("ocr_exact" in entry for entry in curve)
    return (["suite"] if suite else []) + sorted(names)


def series(curve: list[dict], name: str, metric: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one pair set's metric, skipping the entries that lack it or hold no finite number."""
    key = metric if name == "suite" else f"{name}_{metric}"
    points = [(entry["step"], entry[key]) for entry in curve
              if isinstance(entry.get(key), (int, float)) and math.isfinite(entry[key])]
    return [step for step, _ in points], [value for _, value in points]


def plot(curve: list[dict], path: Path, title: str, restart: int = 0) -> None:
    """Three panels over the training steps: the new text read (exact, 1 - NED), PSNR outside the edited
    region, and text-to-image on held-out words; one colour per pair set; `restart` > 0 marks the step where
    this run took over from the earlier one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for colour, name in enumerate(pair_sets(curve)):
        for metric, style, label in (("ocr_exact", "o-", "exact"), ("ocr_agreement", "s--", "1 - NED")):
            axes[0].plot(*series(curve, name, metric), style, color=f"C{colour}", label=f"{name}: {label}")
        axes[1].plot(*series(curve, name, "psnr"), "o-", color=f"C{colour}", label=name)
    axes[1].axhline(25, color="gray", linestyle=":", label="the text-edit suite's bar (25 dB)")
    axes[2].plot(*series(curve, "t2i", "heldout_exact"), "o-", color="C3")
    for ax, heading in zip(axes, ("new text read in the region", "PSNR outside the region (dB)",
                                  "text-to-image, held-out en-words (exact)")):
        ax.set_title(heading)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        if restart:
            ax.axvline(restart, color="gray", linestyle="--", lw=0.8)
    axes[0].set_ylim(0, 1.02)
    axes[2].set_ylim(0, 1.02)
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def chained(curve: list[dict], before: Path | None, offset: int) -> list[dict]:
    """This run's curve with its steps counted on from `offset`, after the earlier run's curve (steps < offset)."""
    earlier = []
    if before is not None:
        lines = (before / "edit-curve.jsonl").read_text().splitlines()
        earlier = [entry for entry in map(json.loads, lines) if entry["step"] <= offset]
    return earlier + [{**entry, "step": entry["step"] + offset} for entry in curve]


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
    parser.add_argument("--text-focus", action="store_true",
                        help="also score the suite with --text-focus (the word edited on the model's own canvas; "
                             "*_focus fields; the base's qwenimage.json must declare text_focus)")
    parser.add_argument("--pairs", nargs="+", type=named_folder, default=[], metavar="NAME=DIR",
                        help="also edit these pairs (a pairs folder or a synth folder of edit pairs)")
    parser.add_argument("--no-suite", action="store_true", help="skip the text-edit suite (--no-t2i skips the text-to-image check)")
    parser.add_argument("--watch", type=float, default=0, help="look for new exports every this many seconds")
    parser.add_argument("--plot", type=Path, default=None, metavar="PNG",
                        help="redraw the curve into this picture after each measurement")
    parser.add_argument("--before", type=Path, default=None, metavar="RUN",
                        help="with --plot: an earlier run whose curve comes first (this run started from it)")
    parser.add_argument("--offset", type=int, default=0, metavar="STEP",
                        help="with --plot: the step of the earlier run this run started from")
    parser.add_argument("--at", type=int, nargs="+", default=None, metavar="STEP",
                        help="measure only the exports of these steps (default: every one)")
    args = parser.parse_args()
    while True:
        curve = measure_new(args.run, "edit-curve.jsonl", lambda export: evaluate(args.run, export, args),
                            None if args.at is None else set(args.at))
        if args.plot and curve:
            title = f"qwenimage-mini text edits: {args.run.name}" + (f" (from step {args.offset} of "
                                                                       f"{args.before.name})" if args.before else "")
            plot(chained(curve, args.before, args.offset), args.plot, title, args.offset)
        last = last_step(args.run) if args.at is None else max(args.at)
        if not args.watch or any(entry["step"] >= last for entry in curve):
            return 0
        time.sleep(args.watch)


if __name__ == "__main__":
    raise SystemExit(main())
