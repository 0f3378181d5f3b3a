"""Pluggable image scorers (NSFW, aesthetics, watermarks, categories): a local Hugging Face
image-classification folder, or any Python function `f(images: list[np.ndarray]) -> list[float]`.

Nothing is downloaded: `model_path` must be a folder with config.json, the weights and
preprocessor_config.json (what `save_pretrained` writes). Models load on first use, once per worker.
"""

from __future__ import annotations

import importlib
from typing import Callable

import numpy as np

from qwenimage.curate.config import HookConfig
from qwenimage.curate.errors import SetupError


class ImageClassifier:
    """AutoModelForImageClassification from a local folder; `probabilities` gives label -> probability."""

    def __init__(self, model_path: str, device: str = "cpu"):
        self.model_path, self.device = model_path, device
        self._model = self._processor = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_model": None, "_processor": None}

    def _load(self) -> None:
        if self._model is None:
            from transformers import AutoImageProcessor, AutoModelForImageClassification

            try:
                self._processor = AutoImageProcessor.from_pretrained(self.model_path, local_files_only=True)
                model = AutoModelForImageClassification.from_pretrained(self.model_path, local_files_only=True)
            except (OSError, ValueError) as err:
                raise SetupError(f"cannot load the image classifier at {self.model_path}: {err}") from err
            self._model = model.to(self.device).eval()

    def logits(self, images: list[np.ndarray]):
        import torch

        self._load()
        inputs = self._processor(images=list(images), return_tensors="pt").to(self.device)
        with torch.no_grad():
            return self._model(**inputs).logits.float().cpu()  # [N, num_labels]

    @property
    def labels(self) -> list[str]:
        self._load()
        return [self._model.config.id2label[i] for i in range(self._model.config.num_labels)]

    def probabilities(self, images: list[np.ndarray]) -> list[dict[str, float]]:
        logits = self.logits(images)
        probs = logits.sigmoid() if self._model.config.problem_type == "multi_label_classification" \
            else logits.softmax(dim=-1)
        return [dict(zip(self.labels, row.tolist())) for row in probs]

    def scores(self, images: list[np.ndarray], labels: list[str]) -> list[float]:
        """Summed probability of `labels` (case-insensitive); a one-output model's raw value without labels."""
        if not labels:
            return self.logits(images)[:, 0].tolist()
        wanted = {label.lower() for label in labels}
        return [sum(p for name, p in row.items() if name.lower() in wanted) for row in self.probabilities(images)]

    def top_labels(self, images: list[np.ndarray]) -> list[str]:
        return [max(row, key=row.get) for row in self.probabilities(images)]


def import_function(spec: str) -> Callable:
    """'package.module:function' -> the function."""
    module_name, sep, attr = spec.partition(":")
    if not sep:
        raise ValueError(f"hook function {spec!r} must look like 'package.module:function'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise SetupError(f"cannot import hook function {spec!r}: {err}") from err


class Scorer:
    """One float per image from a HookConfig's model or function; None when the hook is off."""

    def __init__(self, config: HookConfig):
        self.config = config
        self.classifier = ImageClassifier(config.model_path, config.device) if config.model_path else None

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def __call__(self, images: list[np.ndarray]) -> list[float]:
        if not images:
            return []
        if self.classifier is not None:
            return self.classifier.scores(images, self.config.labels)
        values = list(import_function(self.config.function)(images))
        if len(values) != len(images):
            raise ValueError(f"hook {self.config.function} returned {len(values)} scores for {len(images)} images")
        return [float(v) for v in values]
