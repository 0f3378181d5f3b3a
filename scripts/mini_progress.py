"""Measure qwenimage-mini's training run from its exported checkpoints and plot the learning curve.

    python scripts/mini_progress.py [--run outputs/mini/train] [--n 50] [--once]

For every `exports/step-N/transformer` of the run not measured yet: assemble a pipeline folder with the base
components, generate the `en-words` suite (held-out words) and an en-words-style suite of words the model was
trained on, score both with the eval harness (`qwenimage eval text`), and append one line to
`<run>/curve.jsonl`. Then plot held-out / trained-word exact accuracy (and the VAE's OCR after reconstruction,
when measured) against training samples and CPU-hours into docs/mini/learning_curve.png.

CPU-hours are wall-hours from the training log (the sum of its logged intervals) times the 2 cores of the
machine the run used (trainer thread + producer thread).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORES = 2


def seen_words(run: Path, count: int = 100) -> Path:
    """A word file of single lower-case words from the run's training captions (the trained-word suite)."""
    path = run / "seen_words.txt"
    if path.is_file():
        return path
    sys.path.insert(0, str(ROOT / "src"))
    from qwenimage.jobconfig import load_job_config
    from qwenimage.train.config import TrainConfig
    from qwenimage.train.records import read_records

    config = load_job_config(TrainConfig, run / "config.yaml")
    words: list[str] = []
    for source in config.data.sources[-4:]:
        for record in read_records([source]):
            if re.fullmatch(r"[a-z]{3,8}", record.text) and record.text not in words:
                words.append(record.text)
    path.write_text("\n".join(words[:count]) + "\n")
    return path


def wall_hours(run: Path, step: int) -> tuple[float, int]:
    """(wall-hours, samples) of the training log up to `step`."""
    hours, samples, last = 0.0, 0, 0
    batch = samples_in(run)
    for line in (run / "log.jsonl").read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line of a killed run
        if entry.get("step", 0) > step or "samples_per_s" not in entry:
            continue
        done = (entry["step"] - last) * batch
        hours += done / max(entry["samples_per_s"], 1e-9) / 3600
        samples, last = samples + done, entry["step"]
    return hours, samples


def samples_in(run: Path) -> int:
    import yaml

    return int(yaml.safe_load((run / "config.yaml").read_text())["data"]["batch_size"])


def metric(results: Path, suite: str, name: str = "exact_match") -> float:
    data = json.loads(results.read_text())
    metrics = next(v for k, v in data["suites"].items() if k.startswith(suite))["metrics"]
    return metrics[name]["value"] if isinstance(metrics[name], dict) else metrics[name]


def scores(out: Path) -> dict:
    """Exact match and 1 - NED of an export's two eval runs."""
    return {"heldout_exact": metric(out / "heldout" / "results.json", "en-words"),
            "heldout_ned": metric(out / "heldout" / "results.json", "en-words", "ned"),
            "seen_exact": metric(out / "seen" / "results.json", "words"),
            "seen_ned": metric(out / "seen" / "results.json", "words", "ned")}


def evaluate(run: Path, export: Path, args) -> dict:
    step = int(export.name.split("-")[1])
    kind = export.parent.name  # exports (EMA) | raw
    snap = run / "snapshots" / kind / export.name
    out = run / "eval" / kind / export.name
    qwen = [sys.executable, "-m", "qwenimage.cli.main"]
    if not (snap / "model_index.json").is_file():
        subprocess.run(qwen + ["mini", "assemble", "--base", args.base, "--transformer", str(export / "transformer"),
                               "--out", str(snap)], check=True)
    common = ["--model", str(snap), "--n", str(args.n), "--size", "128", "--steps", str(args.steps),
              "--cfg", str(args.cfg), "--no-progress"] + (["--template", args.template] if args.template else [])
    subprocess.run(qwen + ["eval", "text", "--suite", "en-words", "--out", str(out / "heldout")] + common,
                   check=True)
    subprocess.run(qwen + ["eval", "text", "--suite", f"words:{seen_words(run)}", "--out", str(out / "seen")]
                   + common, check=True)
    hours, samples = wall_hours(run, step)
    return {"step": step, "samples": samples, "cpu_hours": round(hours * CORES, 3), "kind": kind, **scores(out)}


def continued(previous_path: Path, curve: list[dict]) -> list[dict]:
    """The previous run's curve followed by this run's, whose samples and CPU-hours count on from the previous
    run's last point (the run this one started from)."""
    previous = sorted((json.loads(line) for line in previous_path.read_text().splitlines()), key=lambda c: c["step"])
    last = previous[-1]
    shifted = [{**c, "step": c["step"] + last["step"], "samples": c["samples"] + last["samples"],
                "cpu_hours": round(c["cpu_hours"] + last["cpu_hours"], 3)} for c in curve]
    return previous + shifted


def plot(curve: list[dict], vae_ocr: float | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    curve = sorted(curve, key=lambda c: c["step"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    for ax, key, label in ((axes[0], "samples", "training samples"), (axes[1], "cpu_hours", "CPU-hours")):
        xs = [c[key] for c in curve]
        with_ned = [c for c in curve if "heldout_ned" in c]  # the first points were measured before 1 - NED was
        ax.plot(xs, [c["heldout_exact"] for c in curve], "o-", color="C0", label="held-out words: exact")
        ax.plot([c[key] for c in with_ned], [c["heldout_ned"] for c in with_ned], "o:", color="C0",
                label="held-out words: 1 - NED")
        seen = [c for c in curve if "seen_exact" in c]  # a point may have only the held-out suite measured
        ax.plot([c[key] for c in seen], [c["seen_exact"] for c in seen], "s-", color="C1", label="trained words: exact")
        ax.plot([c[key] for c in seen if "seen_ned" in c], [c["seen_ned"] for c in seen if "seen_ned" in c], "s:",
                color="C1", label="trained words: 1 - NED")
        sign = [c for c in curve if "heldout_sign_exact" in c]  # held-out words in the one training wording
        ax.plot([c[key] for c in sign], [c["heldout_sign_exact"] for c in sign], "^-", color="C2",
                label='held-out words, prompted \'a sign that says "..."\': exact')
        if vae_ocr is not None:
            ax.axhline(vae_ocr, color="gray", linestyle="--", label=f"ceiling: VAE reconstruction, exact ({vae_ocr:.2f})")
        ax.set_xlabel(label)
        if key == "samples":
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:.0f}k"))
        ax.set_ylim(0, 1.03)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("OCR score")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)  # below the plots, off the curves
    fig.suptitle("qwenimage-mini: 128x128, 20 steps, CFG 4")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def export_raw(run: Path) -> list[Path]:
    """The training (not EMA) weights of every checkpoint not exported yet, as <run>/raw/step-N/transformer
    (checkpoints are few and rotate; EMA exports lag a short run, the raw weights show where it is)."""
    import torch
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    sys.path.insert(0, str(ROOT / "src"))
    from qwenimage.jobconfig import load_job_config
    from qwenimage.model import QwenImageMMDiT, mmdit_preset
    from qwenimage.train.config import TrainConfig
    from qwenimage.train.trainer import write_text_encoder

    config = load_job_config(TrainConfig, run / "config.yaml")
    written = []
    for checkpoint in sorted((run / "checkpoints").glob("step-*")):
        target = run / "raw" / checkpoint.name
        if checkpoint.name.endswith(".tmp") or target.exists():
            continue
        flat = run / "raw" / f"{checkpoint.name}.pt"
        flat.parent.mkdir(exist_ok=True)
        dcp_to_torch_save(str(checkpoint), str(flat))
        state = torch.load(flat, weights_only=False)["model"]
        tmp = target.with_name(target.name + ".tmp")
        if config.model.train_text_encoder:  # a joint run: transformer.* and text_encoder.* weights
            text = {k.removeprefix("text_encoder."): v for k, v in state.items() if k.startswith("text_encoder.")}
            write_text_encoder(text, Path(config.model.pipeline) / "text_encoder", tmp / "text_encoder")
            state = {k.removeprefix("transformer."): v for k, v in state.items() if k.startswith("transformer.")}
        if config.model.preset:
            model = QwenImageMMDiT(mmdit_preset(config.model.preset, joint_attention_dim=128))
        else:  # a run that started from trained weights has their architecture
            model = QwenImageMMDiT.from_pretrained(config.model.transformer or Path(config.model.pipeline) / "transformer")
        model.load_state_dict(state)
        model.to(torch.bfloat16).save_pretrained(tmp / "transformer")
        tmp.rename(target)
        flat.unlink()
        written.append(target)
    return written


def grid(run_dir: Path, path: Path, count: int = 24, columns: int = 8) -> None:
    """A contact sheet of an eval run: each image with the word asked for and what OCR read (green: exact)."""
    from PIL import Image, ImageDraw, ImageFont

    records = [json.loads(p.read_text()) for p in sorted((run_dir / "records").glob("*.json"))][:count]
    cell, label = 128, 30
    rows = -(-len(records) // columns)
    sheet = Image.new("RGB", (columns * cell, rows * (cell + label)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.truetype("DejaVuSans.ttf", 11) if Path("/usr/share/fonts/truetype/dejavu").is_dir() else None
    for i, record in enumerate(records):
        x, y = (i % columns) * cell, (i // columns) * (cell + label)
        sheet.paste(Image.open(run_dir / record["image"]).convert("RGB").resize((cell, cell)), (x, y))
        wanted = record["texts"][0]
        read = record["ocr"]["text"].replace("\n", " ")[:18] or "(nothing)"
        ok = record["score"]["texts"][0]["exact"]
        draw.text((x + 3, y + cell + 2), f"asked: {wanted}", fill="black", font=font)
        draw.text((x + 3, y + cell + 15), f"read: {read}", fill=(0, 140, 0) if ok else (200, 0, 0), font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("outputs/mini/train"))
    parser.add_argument("--base", default="outputs/mini/base")
    parser.add_argument("--n", type=int, default=50, help="prompts per suite")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=4.0)
    parser.add_argument("--template", default=None,
                        help="re-word every prompt as this template around its word (eval text --template), "
                             "e.g. for a run trained on one caption wording")
    parser.add_argument("--vae-results", type=Path, default=None, help="an `eval vae` results.json")
    parser.add_argument("--vae-ocr", type=float, default=None,
                        help="the VAE's exact OCR after reconstruction, given directly (e.g. measured on the run's "
                             "own word images only, where --vae-results pools them with the eval's renders)")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "mini" / "learning_curve.png")
    parser.add_argument("--only", type=int, default=None, help="measure only this export step")
    parser.add_argument("--raw", action="store_true", help="measure the training weights of the checkpoints "
                                                          "(exported to <run>/raw/) instead of the EMA exports")
    parser.add_argument("--export-only", action="store_true", help="with --raw: export new checkpoints, no eval")
    parser.add_argument("--previous", type=Path, default=None,
                        help="the curve (jsonl) of the run this one continues from: plotted first, and this run's "
                             "samples and CPU-hours counted on from its last point")
    parser.add_argument("--grid", type=Path, default=None, help="also draw a contact sheet of this eval run folder")
    parser.add_argument("--grid-out", type=Path, default=ROOT / "docs" / "mini" / "heldout_grid.png")
    args = parser.parse_args()
    curve_path = args.run / ("curve-raw.jsonl" if args.raw else "curve.jsonl")
    if args.raw:
        export_raw(args.run)
        if args.export_only:
            return 0
    curve = [json.loads(line) for line in curve_path.read_text().splitlines()] if curve_path.is_file() else []
    for entry in curve:  # entries written before 1 - NED was recorded
        if "heldout_ned" not in entry:
            entry.update(scores(args.run / "eval" / ("raw" if args.raw else "exports") / f"step-{entry['step']:08d}"))
    done = {c["step"] for c in curve}
    for export in sorted((args.run / ("raw" if args.raw else "exports")).glob("step-*")):
        step = int(export.name.split("-")[1])
        if export.name.endswith(".tmp") or step in done or (args.only is not None and step != args.only):
            continue
        entry = evaluate(args.run, export, args)
        print(json.dumps(entry))
        with open(curve_path, "a") as handle:
            handle.write(json.dumps(entry) + "\n")
        curve.append(entry)
    vae_ocr = None
    if args.vae_results and args.vae_results.is_file():
        data = json.loads(args.vae_results.read_text())
        vae_ocr = data.get("scalars", {}).get("ocr_exact/text")
    if args.vae_ocr is not None:
        vae_ocr = args.vae_ocr
    if args.previous is not None:
        curve = continued(args.previous, curve) if curve else [json.loads(line) for line in
                                                                 args.previous.read_text().splitlines()]
    if curve:
        plot(curve, vae_ocr, args.plot)
    if args.grid is not None:
        grid(args.grid, args.grid_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
