"""Which samples each micro-step trains on, across curriculum stages and live data versions: a pure function
of the position (global micro-step = step * grad_accumulation + micro), so producers can work ahead.

A data version replaces the sources and/or the task mix from its start step on. Its start is chosen when it
is decided (`Schedule.decide`): the first step after the work already handed to producers at which a new
epoch of the current data (or a new stage) begins. From there the version counts its own epochs, with its
own shuffle. Versions are recorded (updates.py), so a resumed run replays the same sequence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from qwenimage.train.config import TrainConfig
from qwenimage.train.curriculum import stage_at
from qwenimage.train.data import TASKS, BatchPlan, PlannedSample, loser_record
from qwenimage.train.dataplane.jobs import EncodeJob
from qwenimage.train.records import Record, read_records


@dataclass(frozen=True)
class DataVersion:
    index: int
    start_step: int
    sources: list[str]
    tasks: dict[str, float] | None = None  # replaces every stage's task mix; None: the stages' own
    decided_step: int = 0

    def __post_init__(self) -> None:
        if self.tasks is not None and (set(self.tasks) - set(TASKS) or not any(w > 0 for w in self.tasks.values())):
            raise ValueError(f"data version {self.index}: tasks must weight some of {TASKS}, got {self.tasks}")
        if not self.sources:
            raise ValueError(f"data version {self.index}: no sources")

    def to_dict(self) -> dict:
        return asdict(self)


class Schedule:
    def __init__(self, config: TrainConfig, rank: int = 0, world: int = 1, versions: list[DataVersion] | None = None,
                 records: list[Record] | None = None):
        self.config, self.rank, self.world = config, rank, world
        self.accumulation, self.batch = config.optim.grad_accumulation, config.data.batch_size
        self.need_loser = config.objective.kind == "dpo"
        self.stage_starts = [sum(s.steps for s in config.stages[:i]) for i in range(len(config.stages))]
        self.versions: list[DataVersion] = []
        self.records: dict[int, list[Record]] = {}
        self.plans: dict[tuple[int, int], BatchPlan] = {}  # (version, stage) -> plan
        versions = versions or [DataVersion(0, 0, list(config.data.sources))]
        self.add(versions[0], records)
        for version in versions[1:]:
            self.add(version)

    def add(self, version: DataVersion, records: list[Record] | None = None) -> None:
        """Adopt a version: read its records and build its plans (errors leave the schedule unchanged)."""
        if version.index != len(self.versions):
            raise ValueError(f"data version {version.index} follows {len(self.versions) - 1}")
        records = read_records(version.sources, self.config.data.max_bad_records) if records is None else records
        plans = {(version.index, i): self._plan(version, i, records) for i, stage in enumerate(self.config.stages)
                 if self.stage_starts[i] + stage.steps > version.start_step or i == len(self.stage_starts) - 1}
        self.versions.append(version)
        self.records[version.index] = records
        self.plans.update(plans)

    def _plan(self, version: DataVersion, stage_index: int, records: list[Record]) -> BatchPlan:
        stage = self.config.stages[stage_index]
        if version.tasks is not None:
            stage = replace(stage, tasks=dict(version.tasks))
        origin_step = max(0, version.start_step - self.stage_starts[stage_index])
        return BatchPlan(records, stage, stage_index, self.config.seed, self.config.data.short_text_chars,
                         self.need_loser, origin=origin_step * self.accumulation * self.batch, salt=version.index)

    def version_at(self, step: int) -> DataVersion:
        return next(v for v in reversed(self.versions) if v.start_step <= step)

    def planned(self, position: int) -> tuple[int, list[PlannedSample], list[Record]]:
        """(stage index, this rank's planned samples, the records they index) at a position."""
        step, micro = divmod(position, self.accumulation)
        stage_index, in_stage = stage_at(self.config.stages, step)
        version = self.version_at(step)
        plan = self.plans[(version.index, stage_index)]
        planned = plan.micro_batch(in_stage * self.accumulation + micro, self.batch, self.rank, self.world)
        return stage_index, planned, self.records[version.index]

    def jobs(self, position: int) -> list[EncodeJob]:
        """What the producers encode for a position: the planned samples, then (DPO) their losers."""
        stage_index, planned, records = self.planned(position)
        resolution = self.config.stages[stage_index].resolution
        jobs = [EncodeJob(records[p.record], p.task, resolution) for p in planned]
        if self.need_loser:
            jobs += [EncodeJob(loser_record(records[p.record]), "t2i", resolution) for p in planned]
        return jobs

    def decide(self, sources: list[str], tasks: dict[str, float] | None, step: int,
               submitted_until: int) -> DataVersion:
        """Add a version that starts at the first epoch (or stage) start that no producer has work for yet."""
        earliest = max(step, -(-submitted_until // self.accumulation), self.versions[-1].start_step)
        version = DataVersion(len(self.versions), self.epoch_start(earliest), list(sources),
                              dict(tasks) if tasks is not None else None, decided_step=step)
        self.add(version)
        return version

    def epoch_start(self, step: int) -> int:
        """The first step >= `step` whose first sample opens a new epoch or stage."""
        if step >= self.config.total_steps:
            return step
        stage_index, in_stage = stage_at(self.config.stages, step)
        plan = self.plans[(self.version_at(step).index, stage_index)]
        per_step = self.accumulation * self.batch
        first, n = in_stage * per_step - plan.origin, len(plan.eligible)  # the step's first sample, in its epochs
        boundary = -(-first // n) * n
        stage_end = self.stage_starts[stage_index] + self.config.stages[stage_index].steps
        return min(step + -(-(boundary - first) // per_step), stage_end)
