"""What a person watches during training: progress bar, JSONL log, TensorBoard scalars, loss plot."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tqdm import tqdm

from qwenimage.train.faults import write_text


class Monitor:
    """Rank 0 only. `log.jsonl` is appended per logged step, so a resumed run continues the same curve."""

    def __init__(self, output: Path, total_steps: int, start_step: int, tensorboard: bool, enabled: bool = True):
        self.enabled = enabled
        self.output = output
        self.bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", disable=not enabled)
        self.writer = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(output / "tensorboard"))
        self.last = time.perf_counter()
        self.samples = self.tokens = 0
        if enabled:
            end_torn_line(output / "log.jsonl")

    def step(self, step: int, loss: float, lr: float, samples: int, tokens: int, stage: str, log: bool,
             extra: dict[str, float] | None = None) -> None:
        """`extra`: more scalars for the logged step (the data plane's wait, throughput, queue, cache)."""
        self.samples += samples
        self.tokens += tokens
        if not self.enabled:
            return
        self.bar.update(1)
        if not log:
            return
        elapsed = max(time.perf_counter() - self.last, 1e-9)
        record = {"step": step, "loss": loss, "lr": lr, "stage": stage, "samples_per_s": self.samples / elapsed,
                  "tokens_per_s": self.tokens / elapsed, **(extra or {})}
        self.bar.set_postfix(loss=f"{loss:.4f}", stage=stage, sps=f"{record['samples_per_s']:.1f}")
        with open(self.output / "log.jsonl", "a", encoding="utf-8") as handle:
            write_text(handle, json.dumps(record) + "\n", "log", step)
        if self.writer is not None:
            for key in ("loss", "lr", "samples_per_s", "tokens_per_s"):
                self.writer.add_scalar(f"train/{key}", record[key], step)
            for key, value in (extra or {}).items():
                self.writer.add_scalar(f"data/{key}", value, step)
        self.last, self.samples, self.tokens = time.perf_counter(), 0, 0

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
        if self.enabled:
            plot_loss(self.output / "log.jsonl", self.output / "loss.png")


def end_torn_line(path: Path) -> None:
    """A run killed during an append leaves a last line without its newline: cut it off (its record is lost
    either way), so that every line of the log is a whole JSON record again before the resumed run appends."""
    if not path.is_file() or not path.stat().st_size:
        return
    with open(path, "rb+") as handle:
        handle.seek(-1, 2)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        data = handle.read()
        handle.truncate(data.rfind(b"\n") + 1)  # 0 when the torn line is the only one


def read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            row = None  # a line torn by a killed run: skipped, the next record starts on a fresh line
        if isinstance(row, dict) and "step" in row:
            rows.append(row)
    latest = {row["step"]: row for row in rows}  # a resumed run may log a step twice: keep the newest
    return [latest[s] for s in sorted(latest)]


def trailing_mean(values: list[float], window: int) -> list[float]:
    """Each value averaged with the up to `window` - 1 values before it."""
    return [sum(values[max(0, i - window + 1):i + 1]) / min(i + 1, window) for i in range(len(values))]


def plot_loss(log_path: Path, out: Path) -> Path | None:
    rows = read_log(log_path)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rewarded = [r for r in rows if "reward_mean" in r]  # GRPO: the reward is the curve to watch
    fig, axes = plt.subplots(1, 2 if rewarded else 1, figsize=(11 if rewarded else 6, 3.5), dpi=100, squeeze=False)
    ax = axes[0][0]
    losses = [r["loss"] for r in rows]
    ax.plot([r["step"] for r in rows], losses, lw=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if min(losses) > 0:
        ax.set_yscale("log")
    else:  # GRPO's loss can be zero or negative
        ax.set_yscale("symlog", linthresh=1e-4)
    ax.grid(alpha=0.3)
    if rewarded:
        ax = axes[0][1]
        steps = [r["step"] for r in rewarded]
        ax.plot(steps, [r["reward_mean"] for r in rewarded], lw=1.0, alpha=0.4, label="reward (step mean)")
        window = max(1, len(rewarded) // 20)
        ax.plot(steps, trailing_mean([r["reward_mean"] for r in rewarded], window), lw=1.6,
                label=f"reward ({window}-step mean)")
        kl = [(r["step"], r["kl"]) for r in rewarded if "kl" in r]
        if kl:
            twin = ax.twinx()
            twin.plot(*zip(*kl), color="C3", lw=0.8, alpha=0.6)
            twin.set_ylabel("KL to the reference", color="C3")
        ax.set_xlabel("step")
        ax.set_ylabel("reward")
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
