"""Reward plug-ins for RL training (train/grpo.py) and the worker pool that runs them beside the trainer.

A reward is any callable `(images: list[PIL.Image], prompts: list[str]) -> sequence of floats` (one per
image, higher is better). It is named in the config as
- `ocr`: text accuracy of the image against the texts its prompt quotes (OCR reading, 1 - normalised edit
  distance of the best-matching substring, averaged over the quoted texts; qwenimage.eval.metrics);
- `module:function`: imported with importlib; a class there is instantiated once per worker.

    pool = RewardPool("ocr", workers=2)                   # threads; kind="ray" runs Ray actors instead
    future = pool.submit(images, prompts)                 # concurrent.futures.Future of a list of floats
    rewards = future.result()

Each worker builds its own reward (an OCR engine per thread or actor), so scoring runs while the trainer
samples the next group and trains on the previous one.
"""

from __future__ import annotations

import importlib
import logging
import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Sequence

from PIL import Image

from qwenimage.eval.metrics import score_sample
from qwenimage.eval.prompts import quoted_texts

# (images, one prompt per image) -> one reward per image
RewardFn = Callable[[list[Image.Image], list[str]], Sequence[float]]
POOL_KINDS = ("thread", "ray")


class OcrReward:
    """Mean over the prompt's quoted texts of the OCR text score (`TextScore.ned`, in [0, 1])."""

    def __init__(self, threads: int = 1, min_score: float = 0.5):
        from qwenimage.ocr import OcrEngine

        self.engine = OcrEngine(min_score=min_score, threads=threads)

    def __call__(self, images: list[Image.Image], prompts: list[str]) -> list[float]:
        scores = []
        for image, prompt in zip(images, prompts):
            texts = quoted_texts(prompt)
            if not texts:
                raise ValueError(f"the ocr reward needs a quoted text in every prompt, got {prompt!r}")
            scores.append(score_sample(list(texts), self.engine.read(image).text).mean_ned)
        return scores


def check_reward_spec(spec: str) -> None:
    """`ocr` or `module:function` (checked without importing anything); raises ValueError naming the spec."""
    module, sep, name = spec.partition(":")
    if spec != "ocr" and not (sep and module.strip() and name.strip()):
        raise ValueError(f"reward must be 'ocr' or 'module:function', got {spec!r}")


def load_reward(spec: str | RewardFn) -> RewardFn:
    """The reward a spec names (a callable is returned as it is)."""
    if callable(spec):
        return spec
    check_reward_spec(spec)
    if spec == "ocr":
        return OcrReward()
    module_name, _, name = spec.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"reward {spec!r} cannot be loaded: {err}") from err
    reward = found() if isinstance(found, type) else found
    if not callable(reward):
        raise ValueError(f"reward {spec!r} is a {type(reward).__name__}, not a callable")
    return reward


def reward_name(spec: str | RewardFn) -> str:
    """How messages name a reward: its spec, or the callable's name."""
    return repr(spec if isinstance(spec, str) else getattr(spec, "__name__", type(spec).__name__))


def checked_rewards(values: Sequence[float], count: int, what: str) -> list[float]:
    """The rewards as floats, or ValueError when there are not `count` finite numbers."""
    rewards = [float(v) for v in values]
    if len(rewards) != count or not all(math.isfinite(r) for r in rewards):
        raise ValueError(f"reward {what} must return {count} finite numbers, got {rewards}")
    return rewards


class RewardActor:
    """The body of one Ray reward actor (made remote by RewardPool): it loads its own reward."""

    def __init__(self, spec: str | RewardFn):
        self.reward, self.name = load_reward(spec), reward_name(spec)

    def score(self, images: list[Image.Image], prompts: list[str]) -> list[float]:
        return checked_rewards(self.reward(images, prompts), len(images), self.name)


class RewardPool:
    """Scores batches off the training thread: `workers` threads (each with its own reward object) or Ray
    actors (`kind="ray"`; `ray_address` joins a running cluster, empty starts Ray here)."""

    def __init__(self, spec: str | RewardFn, workers: int = 1, kind: str = "thread", ray_address: str = "",
                 cpus: float = 1.0):
        if kind not in POOL_KINDS:
            raise ValueError(f"reward pool kind must be one of {', '.join(POOL_KINDS)}, got {kind!r}")
        if workers < 1:
            raise ValueError(f"the reward pool needs at least one worker, got {workers}")
        self.spec, self.kind, self.turn = spec, kind, 0
        self.name = reward_name(spec)
        if kind == "thread":
            self.local = threading.local()
            self.executor = ThreadPoolExecutor(workers, thread_name_prefix="reward")
        else:
            self._start_ray(workers, ray_address, cpus)

    def _start_ray(self, workers: int, address: str, cpus: float) -> None:
        import ray

        self.ray, self.started_ray = ray, not ray.is_initialized()
        if self.started_ray:
            local = {} if address else {"include_dashboard": False}
            ray.init(address=address or None, logging_level=logging.WARNING, **local)
        actor = ray.remote(RewardActor).options(num_cpus=cpus, max_restarts=3, max_task_retries=1)
        self.actors = [actor.remote(self.spec) for _ in range(workers)]

    def _score_here(self, images: list[Image.Image], prompts: list[str]) -> list[float]:
        if not hasattr(self.local, "reward"):
            self.local.reward = load_reward(self.spec)  # one per thread: OCR engines are not shared
        return checked_rewards(self.local.reward(images, prompts), len(images), self.name)

    def submit(self, images: list[Image.Image], prompts: list[str]) -> Future:
        """A future of one reward per image."""
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        if self.kind == "thread":
            return self.executor.submit(self._score_here, images, prompts)
        actor = self.actors[self.turn % len(self.actors)]
        self.turn += 1
        return actor.score.remote(images, prompts).future()

    def close(self) -> None:
        if self.kind == "thread":
            self.executor.shutdown(wait=True, cancel_futures=True)
            return
        for actor in self.actors:
            self.ray.kill(actor)
        if self.started_ray:
            self.ray.shutdown()
