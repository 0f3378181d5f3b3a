"""Recipes: a whole training run (data, VAE, transformer, assembly) as one resumable command.

    qwenimage train --config configs/train/mini_recipe.yaml                 # every step, in order
    qwenimage train --config configs/train/mini_recipe.yaml "only=[vae]"    # some steps

A recipe is a YAML with `kind: recipe` and a list of steps; each step is a `qwenimage` command line
(synth, curate, train, mini, eval ...) run in this process. Every command resumes by itself (synth keeps
finished shards, training restarts from its newest checkpoint), so rerunning a killed recipe continues where
it stopped; a step whose `done` path exists is skipped outright. `{configs}` in an argument is the folder of
the recipe file, so a recipe finds its sibling configs from any working directory; other relative paths are
relative to the working directory. `extra` appends arguments to the steps named by its keys (a toy run
in a test, a GPU variant: `train` steps take dotted overrides, `synth` steps KEY=VALUE job fields).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class RecipeStep:
    name: str
    command: list[str]  # a qwenimage command line without the program name
    done: str = ""  # skip the step when this path exists (e.g. a model folder the step writes last)


@dataclass
class RecipeConfig:
    kind: str = "recipe"
    steps: list[RecipeStep] = field(default_factory=list)
    only: list[str] = field(default_factory=list)  # run only these steps (empty: all)
    extra: dict[str, list[str]] = field(default_factory=dict)  # step name -> arguments appended to its command

    def __post_init__(self) -> None:
        if self.kind != "recipe":
            raise ValueError(f"a recipe has kind: recipe, got {self.kind!r}")
        if not self.steps:
            raise ValueError("a recipe needs at least one step")
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"recipe step names must be unique, got {names}")
        unknown = sorted((set(self.only) | set(self.extra)) - set(names))
        if unknown:
            raise ValueError(f"unknown recipe steps {unknown}; the recipe has {names}")


def run_recipe(config: RecipeConfig, recipe_file: Path | None = None) -> list[str]:
    """Run the recipe's steps in order; returns the names of the steps that ran."""
    from qwenimage.cli.main import main

    configs = str(recipe_file.resolve().parent) if recipe_file is not None else "."
    ran = []
    for step in config.steps:
        if config.only and step.name not in config.only:
            continue
        if step.done and Path(step.done).exists():
            log.info("recipe step %s: already done (%s exists)", step.name, step.done)
            continue
        argv = [arg.replace("{configs}", configs) for arg in step.command] + list(config.extra.get(step.name, []))
        log.info("recipe step %s: qwenimage %s", step.name, " ".join(argv))
        started = time.perf_counter()
        code = main(argv)
        if code != 0:
            raise ValueError(f"recipe step {step.name!r} failed (exit {code}): qwenimage {' '.join(argv)}")
        log.info("recipe step %s: done in %.0f s", step.name, time.perf_counter() - started)
        ran.append(step.name)
    return ran
