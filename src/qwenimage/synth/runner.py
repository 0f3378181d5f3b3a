"""Running a synthetic-text job into an output folder: resume, spread shards over workers, summarise.

    summary = run_job(SynthJob(count=1000, strategies={"pure": 1}), "out/synth", RunOptions(workers=2))

The folder holds `job.json` (the resolved job), the shards, `stats/` (one file per finished shard),
`summary.json` and `report/` (contact sheets). Running again on the same folder with the same job skips
the finished shards and deletes half-written ones; a different job is refused.

Local workers are spawned processes (no fork of a process that may hold threads), so a script calling
`run_job` with several workers needs the usual `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from qwenimage.synth.job import SynthJob
from qwenimage.synth.shards import (STATS_DIR, read_keys, remove_partials, remove_shard, shard_path, stats_path,
                                    write_json_atomic)
from qwenimage.synth.worker import ShardStats, render_shard_task, resolved_synth_options

EXECUTORS = ("local", "ray")
JOB_FILE = "job.json"


@dataclass
class RunOptions:
    """How to run a job; none of these change its output."""

    workers: int = 1
    executor: str = "local"  # local process pool, or Ray tasks
    ray_address: str | None = None  # None: start a local Ray with `workers` CPUs
    progress: bool = True
    report_samples: int = 12  # thumbnails per strategy in the contact sheets (0: no report)

    def __post_init__(self):
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")


def run_job(job: SynthJob, out: str | Path, options: RunOptions | None = None) -> dict:
    """Render every missing shard of `job` into `out`, then write summary.json (and the report)."""
    from qwenimage.synth.report import build_summary, write_report

    options, out = options or RunOptions(), Path(out)
    prepare_output(job, out)
    todo = pending_shards(job, out)
    started = time.perf_counter()
    if todo:
        execute(job, out, todo, options)
    elapsed = time.perf_counter() - started
    stats = [ShardStats.from_json(json.loads(stats_path(out, k).read_text("utf-8"))) for k in range(job.num_shards)]
    run = {"shards_rendered": len(todo), "shards_skipped": job.num_shards - len(todo),
           "samples_rendered": sum(len(job.shard_indices(k)) for k in todo), "wall_seconds": round(elapsed, 3),
           "workers": options.workers, "executor": options.executor}
    summary = build_summary(job, stats, run)
    write_json_atomic(out / "summary.json", summary)
    if options.report_samples > 0:
        write_report(job, out, per_strategy=options.report_samples)
    return summary


def prepare_output(job: SynthJob, out: Path) -> None:
    """Create `out` with job.json, or check that the job.json there is this job; drop half-written files."""
    record = {"job": json.loads(json.dumps(job.to_json())), "synth_config": resolved_synth_options(job)}
    record["synth_config"] = json.loads(json.dumps(record["synth_config"], default=str))
    path = out / JOB_FILE
    if path.is_file():
        stored = json.loads(path.read_text("utf-8"))
        differences = _differences(stored, record)
        if differences:
            raise ValueError(f"{out} holds a different synth job ({'; '.join(differences)}): "
                             "use another --out folder, or delete this one to start over")
    elif out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty and has no {JOB_FILE}: choose a new or empty folder")
    (out / STATS_DIR).mkdir(parents=True, exist_ok=True)
    remove_partials(out)
    if not path.is_file():
        write_json_atomic(path, record)


def _differences(stored: dict, record: dict) -> list[str]:
    """What differs between a job.json and this job; a renderer option missing from a job.json written before
    the option existed is no difference when this job leaves it at its default (e.g. synth_config.edit_pairs)."""
    from qwenimage.synth.config import SynthConfig

    defaults = {"job": {}, "synth_config": json.loads(json.dumps(SynthConfig().to_dict(), default=str))}
    lines = []
    for section in ("job", "synth_config"):
        old, new = stored.get(section, {}), record[section]
        for name in sorted(set(old) | set(new)):
            if name not in old and name in defaults[section] and new.get(name) == defaults[section][name]:
                continue
            if old.get(name) != new.get(name):
                lines.append(f"{name}: {json.dumps(old.get(name))} there, {json.dumps(new.get(name))} now")
    return lines


def pending_shards(job: SynthJob, out: Path) -> list[int]:
    """Shards to render: those without a readable shard whose keys match its stats file (others removed)."""
    return [k for k in range(job.num_shards) if not shard_complete(job, out, k)]


def shard_complete(job: SynthJob, out: Path, shard: int) -> bool:
    try:
        stats = ShardStats.from_json(json.loads(stats_path(out, shard).read_text("utf-8")))
    except (OSError, ValueError, TypeError):
        remove_shard(out, shard, job.format)
        return False
    keys = read_keys(shard_path(out, shard, job.format), job.format)
    expected = [job.key(i) for i in job.shard_indices(shard)]
    complete = keys is not None and keys == stats.keys and sorted([*keys, *stats.failed]) == sorted(expected)
    if not complete:
        remove_shard(out, shard, job.format)
    return complete


def execute(job: SynthJob, out: Path, shards: list[int], options: RunOptions) -> None:
    """Render `shards` with the chosen executor, with a progress bar over samples."""
    from tqdm import tqdm

    total = sum(len(job.shard_indices(k)) for k in shards)
    with tqdm(total=total, unit="sample", desc="synth", disable=not options.progress, smoothing=0.05) as bar:
        if options.executor == "ray":
            run_ray(job, out, shards, options, bar.update)
        elif options.workers == 1 or len(shards) == 1:
            for shard in shards:
                render_shard_task(job.to_json(), str(out), shard, bar.update)
        else:
            run_pool(job, out, shards, options.workers, bar.update)


def run_pool(job: SynthJob, out: Path, shards: list[int], workers: int, tick: Callable[[int], None]) -> None:
    """One shard per task on a process pool (spawned processes; each builds its strategies once)."""
    context = multiprocessing.get_context("spawn")
    ticks = context.Queue()
    with ProcessPoolExecutor(min(workers, len(shards)), mp_context=context, initializer=_init_pool_worker,
                             initargs=(ticks,)) as pool:
        pending = {pool.submit(_pool_task, job.to_json(), str(out), k) for k in shards}
        try:
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(ticks, tick)
                for future in done:
                    future.result()  # re-raises a worker's error here
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    _drain(ticks, tick)


_TICKS = None  # the pool worker's progress queue


def _init_pool_worker(ticks) -> None:
    global _TICKS
    _TICKS = ticks


def _pool_task(job_json: dict, out: str, shard: int) -> dict:
    return render_shard_task(job_json, out, shard, _TICKS.put)


def _drain(ticks, tick: Callable[[int], None]) -> None:
    import queue

    while True:
        try:
            tick(ticks.get_nowait())
        except queue.Empty:
            return


def run_ray(job: SynthJob, out: Path, shards: list[int], options: RunOptions, tick: Callable[[int], None]) -> None:
    """The same shard function as Ray tasks; `out` must be on storage that every Ray node sees."""
    try:
        import ray
    except ImportError:
        raise ValueError("--executor ray needs Ray: pip install 'qwenimage[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        target = {"address": options.ray_address} if options.ray_address else {"num_cpus": options.workers}
        ray.init(**target, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(render_shard_task)
        pending = [task.remote(job.to_json(), str(out), k) for k in shards]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            stats = ray.get(done[0])
            tick(len(stats["keys"]) + len(stats["failed"]))
    finally:
        if started_here:
            ray.shutdown()
