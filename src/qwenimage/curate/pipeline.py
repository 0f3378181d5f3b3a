"""The curation run, phase by phase, resumable at shard granularity.

    run = Curation(config, inputs=["photos/", "synth/"], out="curated/")
    summary = run.run()           # or run.run(executor) with your own executor

1. scan (workers): S1 per record          -> work/scan/*.jsonl
2. assess (workers): S2-S5, S6 categories -> work/assess/*.jsonl
3. select (driver): deduplication (the copy that got furthest wins), S6 balance, S7 buckets and weights
4. write (workers): output shards and per-record outcomes; then the funnel report

Every step's result is a file written atomically; a rerun skips the shards already done and recomputes
the cheap driver steps, which are deterministic, so a killed and restarted run writes the same bytes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from qwenimage.curate.config import CurateConfig
from qwenimage.curate.config_docs import config_yaml
from qwenimage.curate.executors import make_executor
from qwenimage.curate.inputs import InputPlan, InputShard, plan_inputs
from qwenimage.curate.phases import AssessPhase, AssessTask, ScanPhase, WritePhase, WriteTask
from qwenimage.curate.record import Record
from qwenimage.curate.report import write_report
from qwenimage.curate.stages.s1_preprocess import apply_duplicates, duplicate_report, duplicates
from qwenimage.curate.stages.s6_balance import achieved_shares, balance
from qwenimage.curate.stages.s7_multiscale import multiscale
from qwenimage.curate.workdir import (WorkDir, atomic_write_bytes, atomic_write_json, read_json, read_records,
                                      write_records)

log = logging.getLogger(__name__)


@dataclass
class Summary:
    records: int
    kept: int  # passed all seven stages
    written: int  # samples in the output shards
    shards: int
    resumed: bool
    seconds: float
    report: Path


class Curation:
    def __init__(self, config: CurateConfig, inputs: list[str | Path], out: str | Path, overwrite: bool = False):
        if not inputs:
            raise ValueError("no inputs: give at least one --input")
        self.config, self.inputs, self.overwrite = config, [str(Path(p).resolve()) for p in inputs], overwrite
        self.dir = WorkDir(out)

    def identity(self) -> dict:
        """What decides the output: everything but the executor settings."""
        return {"config": asdict(replace(self.config, executor=type(self.config.executor)())), "inputs": self.inputs}

    def run(self, executor=None) -> Summary:
        start = time.perf_counter()
        resumed = self.dir.resuming(self.identity(), self.overwrite)
        removed = self.dir.remove_leftovers()
        if resumed:
            log.info("resuming %s (%d unfinished files removed)", self.dir.out, removed)
        plan = self._plan(resumed)  # a missing or unknown input fails here, before OUT is claimed
        shards = plan.shards
        self.dir.claim(self.identity())
        atomic_write_bytes(self.dir.out / "config.yaml", config_yaml(self.config).encode("utf-8"))
        own = executor is None
        cfg = self.config.executor
        executor = executor or make_executor(cfg.kind, cfg.workers, cfg.ray_address)
        try:
            self._phase("scan", ScanPhase(self.config), [s for s in shards if not self.dir.done("scan", s.index)],
                        executor)
            self._phase("assess", AssessPhase(self.config), [self._assess_task(s) for s in shards
                                                             if not self.dir.done("assess", s.index)], executor)
            per_shard, reports = self._select(shards)
            self._write(shards, per_shard, executor)
        finally:
            if own:
                executor.close()
        records = [r for group in per_shard for r in group]
        reports["inputs"] = {"shards": len(shards), "skipped": [s.to_json() for s in plan.skipped],
                             "skipped_files": sum(s.files for s in plan.skipped)}
        report = write_report(self.dir.out, records, reports, self.config)
        kept = sum(r.kept for r in records)
        written = sum(r.stage_passed >= self.config.output.min_stage for r in records)
        return Summary(len(records), kept, written, len(shards), resumed, time.perf_counter() - start, report)

    def _plan(self, resumed: bool) -> InputPlan:
        """The work shards: fixed at the first run (files added to an input folder later are not picked up
        by a resumed run)."""
        path = self.dir.work / "plan.json"
        if resumed and path.is_file():
            return InputPlan.from_json(read_json(path))
        plan = plan_inputs(self.inputs, self.config.input)
        atomic_write_json(path, plan.to_json())
        return plan

    def _phase(self, phase: str, fn, tasks: list, executor) -> None:
        """Run `fn` over the pending tasks; save each shard's records as soon as they come back."""
        for done, (shard, records) in enumerate(executor.map(fn, tasks), 1):
            write_records(self.dir.shard_file(phase, shard), records)
            log.info("%s: shard %d done (%d/%d)", phase, shard, done, len(tasks))

    def _assess_task(self, shard: InputShard) -> AssessTask:
        scanned = read_records(self.dir.shard_file("scan", shard.index))
        return AssessTask(shard, [r.to_json() for r in scanned])

    def _select(self, shards: list[InputShard]) -> tuple[list[list[Record]], dict]:
        """Deduplication, S6 and S7 over every shard's assessed records (in place); records grouped by shard.
        Deterministic, so a resumed run decides the same."""
        per_shard = [read_records(self.dir.shard_file("assess", s.index)) for s in shards]
        records = [r for group in per_shard for r in group]
        found = duplicates(records, self.config)
        apply_duplicates(records, found)
        reports = {"dedup": duplicate_report(records, found), "s6": balance(records, self.config),
                   "s7": multiscale(records, self.config)}
        reports["s6"]["achieved_shares"] = achieved_shares(records)  # with S7's token weights
        return per_shard, reports

    def _write(self, shards: list[InputShard], per_shard: list[list[Record]], executor) -> None:
        tasks = [WriteTask(shard, [{**r.to_json(), "thumbnail": None} for r in group])
                 for shard, group in zip(shards, per_shard)
                 if not (self.dir.out / "records" / f"part-{shard.index:06d}.jsonl").is_file()]
        for _ in executor.map(WritePhase(self.config, str(self.dir.out)), tasks):
            pass
