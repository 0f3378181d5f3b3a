"""Where shard tasks run: in this process, in a local process pool (the default), or on Ray Data.

`executor.map(fn, tasks)` yields `fn(task)` for every task as it completes (any order). `fn` is a picklable
phase object holding the stage operators; each worker (process or Ray actor) unpickles it once, so models
inside the operators load once per worker. Workers run single-threaded math (OMP/torch/OpenCV threads = 1):
the parallelism comes from the processes.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import pickle
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterable, Iterator

log = logging.getLogger(__name__)

_PHASES: dict[str, Callable] = {}  # phase objects unpickled in this worker process, by digest


def single_threaded() -> None:
    """Keep one thread per worker in the numeric libraries (set before models load)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import cv2

    cv2.setNumThreads(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def worker_phase(fn_bytes: bytes) -> Callable:
    """The phase object for these bytes, unpickled once per worker process, so that the models inside
    load once per phase; the previous phase's object (and its models) is released."""
    digest = hashlib.sha1(fn_bytes).hexdigest()
    if digest not in _PHASES:
        single_threaded()
        _PHASES.clear()
        _PHASES[digest] = pickle.loads(fn_bytes)
    return _PHASES[digest]


def _run_pickled(fn_bytes: bytes, task: Any) -> Any:
    return worker_phase(fn_bytes)(task)


def worker_count(workers: int) -> int:
    return workers if workers > 0 else (os.cpu_count() or 1)


class LocalExecutor:
    """A process pool kept for the whole run (forkserver: workers do not inherit the parent's threads);
    one worker runs the tasks inline."""

    def __init__(self, workers: int = 0):
        self.workers = worker_count(workers)
        self._pool: ProcessPoolExecutor | None = None

    def map(self, fn: Callable, tasks: Iterable[Any]) -> Iterator[Any]:
        tasks = list(tasks)
        if self.workers == 1 or len(tasks) <= 1:
            yield from (fn(task) for task in tasks)
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("forkserver"))
        fn_bytes = pickle.dumps(fn)
        pending = {self._pool.submit(_run_pickled, fn_bytes, task) for task in tasks}
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def _ray_batch(batch: dict, fn_bytes: bytes) -> dict:
    """Ray Data task: run the phase on each pickled task of the batch."""
    fn = worker_phase(fn_bytes)
    return {"result": [pickle.dumps(fn(pickle.loads(task))) for task in batch["task"]]}


class RayExecutor:
    """Ray Data on a local Ray (started here) or an existing cluster (`address`); actors = workers."""

    def __init__(self, workers: int = 0, address: str | None = None):
        import ray

        self._started = not ray.is_initialized()
        if self._started:
            options = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(num_cpus=worker_count(workers), **options)
        self.workers = workers if workers > 0 else max(1, int(ray.cluster_resources().get("CPU", 1)))

    def map(self, fn: Callable, tasks: Iterable[Any]) -> Iterator[Any]:
        import ray.data

        tasks = list(tasks)
        if not tasks:
            return
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        rows = [{"task": pickle.dumps(task)} for task in tasks]
        # tasks, not actors: Ray reuses its worker processes across phases, and `worker_phase` keeps each
        # phase's operators (and models) loaded in them
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            _ray_batch, fn_kwargs={"fn_bytes": pickle.dumps(fn)}, batch_size=1, num_cpus=1,
            compute=ray.data.TaskPoolStrategy(size=min(self.workers, len(rows))), batch_format="numpy")
        for row in dataset.iter_rows():
            yield pickle.loads(row["result"])

    def close(self) -> None:
        import ray

        if self._started and ray.is_initialized():
            ray.shutdown()


def make_executor(kind: str, workers: int, address: str | None = None):
    if kind == "ray":
        try:
            return RayExecutor(workers, address)
        except ImportError as err:
            raise ValueError("--executor ray needs Ray Data: pip install 'ray[data]'") from err
    return LocalExecutor(workers)
