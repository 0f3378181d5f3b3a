"""Measure qwenimage-mini's Flow-GRPO run (configs/train/mini_grpo.yaml) at every export and plot its curve.

    python scripts/mini_grpo_progress.py [--run outputs/mini/grpo] [--n 200] [--watch 600]

The run learns on the `en-words` suite's dev split; this measures the test split, which it never sees. First the
starting model (`--base`, the shipped one) once, as <run>/eval/base; then for every `exports/step-N` not measured
yet: assemble a pipeline (`qwenimage mini assemble`), generate and score the test split (`qwenimage eval text
--split test`, the model's native size, 20 steps, CFG 4, the same seeds as the base), compare it with the base
(`qwenimage eval compare`: the accuracy change with its paired 95% interval, and the quality guard: PSNR of the
pixels outside the text against the base's image of the same prompt and seed), and append one line to
<run>/grpo-curve.jsonl with the training log's reward and KL around that step. Then plot everything into
docs/mini/grpo_curve.png. Acceptance (issue 18): exact >= base + 0.05 (or >= 0.97 when the base is above 0.92).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mini_runs import assemble, last_step, measure_new, qwenimage

from qwenimage.train.monitor import read_log, trailing_mean

ROOT = Path(__file__).resolve().parent.parent


def eval_text(model: Path, out: Path, args: argparse.Namespace) -> Path:
    qwenimage("eval", "text", "--model", str(model), "--suite", "en-words", "--split", "test", "--n", str(args.n),
              "--size", "128", "--steps", "20", "--cfg", "4", "--no-progress", "--out", str(out))
    return out


def log_window(run: Path, step: int, width: int) -> dict:
    """Mean reward, and mean KL over the steps that trained, of the `width` logged steps up to `step`."""
    rows = [row for row in read_log(run / "log.jsonl") if step - width < row["step"] <= step and "reward_mean" in row]
    kls = [row["kl"] for row in rows if "kl" in row]
    return {"reward_mean": sum(r["reward_mean"] for r in rows) / max(len(rows), 1),
            "kl": sum(kls) / len(kls) if kls else 0.0}


def evaluate(run: Path, export: Path, base_eval: Path, args: argparse.Namespace) -> dict:
    from qwenimage.eval.compare import compare_runs

    step = int(export.name.split("-")[1])
    snap = assemble(args.base, export, run / "snaps" / export.name)
    result = compare_runs(base_eval, eval_text(snap, run / "eval" / export.name, args))["suites"]["en-words"]
    metrics, difference = result["b"], result["difference"]["exact_match"]
    return {"step": step, "n": result["n"], "exact": metrics["exact_match"]["value"], "ned": metrics["ned"]["value"],
            "base_exact": result["a"]["exact_match"]["value"], "gain": difference["difference"],
            "gain_low": difference["low"], "gain_high": difference["high"],
            "psnr_outside_text": result.get("pixels", {}).get("psnr_outside_text"),
            **log_window(run, step, args.window)}


def plot(curve: list[dict], run: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = curve[0]["base_exact"]
    steps = [0] + [c["step"] for c in curve]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    ax = axes[0]
    ax.plot(steps, [base] + [c["exact"] for c in curve], "o-", label="exact (test split)")
    ax.fill_between([c["step"] for c in curve], [base + c["gain_low"] for c in curve],
                    [base + c["gain_high"] for c in curve], alpha=0.2, label="95% interval (paired vs start)")
    ax.axhline(base + 0.05, color="gray", linestyle="--", label="target: start + 0.05")
    ax.set_title(f"held-out en-words, n={curve[0]['n']}")
    ax.set_xlabel("GRPO step")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot([c["step"] for c in curve], [c["psnr_outside_text"] for c in curve], "s-", color="C2")
    ax.set_title("quality guard: PSNR outside the text vs start (dB)")
    ax.set_xlabel("GRPO step")
    ax = axes[2]
    rows = [r for r in read_log(run / "log.jsonl") if "reward_mean" in r]
    window = max(1, len(rows) // 15)
    ax.plot([r["step"] for r in rows], trailing_mean([r["reward_mean"] for r in rows], window), color="C1",
            label=f"reward, {window}-step mean (dev prompts)")
    twin = ax.twinx()
    twin.plot([r["step"] for r in rows if "kl" in r], [r["kl"] for r in rows if "kl" in r], color="C3", lw=0.7,
              alpha=0.6)
    twin.set_ylabel("KL to the start (trained steps)", color="C3")
    ax.set_xlabel("GRPO step")
    ax.legend(fontsize=8, loc="lower left")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("qwenimage-mini, Flow-GRPO with an OCR reward")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("outputs/mini/grpo"))
    parser.add_argument("--base", type=Path, default=ROOT / "src" / "qwenimage" / "mini" / "model",
                        help="the model the run started from (and whose other components the exports use)")
    parser.add_argument("--n", type=int, default=200, help="test-split prompts (200: all of them)")
    parser.add_argument("--window", type=int, default=25, help="logged steps averaged into each point's reward/KL")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "mini" / "grpo_curve.png")
    parser.add_argument("--watch", type=float, default=0, help="look for new exports every this many seconds")
    args = parser.parse_args()
    base_eval = args.run / "eval" / "base"
    if not (base_eval / "results.json").is_file():
        eval_text(args.base, base_eval, args)
    while True:
        curve = measure_new(args.run, "grpo-curve.jsonl", lambda export: evaluate(args.run, export, base_eval, args))
        if curve:
            plot(curve, args.run, args.plot)
        if not args.watch or any(entry["step"] >= last_step(args.run) for entry in curve):
            return 0
        time.sleep(args.watch)


if __name__ == "__main__":
    raise SystemExit(main())
