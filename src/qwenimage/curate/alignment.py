"""Image-text similarity with a CLIP / SigLIP / Chinese-CLIP model loaded from a local folder.

The folder holds what `save_pretrained` writes for the model, its tokenizer and its image processor (the
Hugging Face hub layout of openai/clip-*, google/siglip2-*, OFA-Sys/chinese-clip-*). Similarity is the
cosine of the projected embeddings; thresholds are per model, since the scales differ.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qwenimage.curate.errors import SetupError


class SimilarityModel:
    def __init__(self, model_path: str, device: str = "cpu"):
        self.model_path, self.device = model_path, device
        self._model = self._tokenizer = self._processor = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_model": None, "_tokenizer": None, "_processor": None}

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        if not Path(self.model_path).is_dir():
            raise SetupError(f"alignment model folder not found: {self.model_path}")
        try:
            model = AutoModel.from_pretrained(self.model_path, local_files_only=True)
            self._tokenizer = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
            self._processor = AutoImageProcessor.from_pretrained(self.model_path, local_files_only=True)
        except (OSError, ValueError) as err:
            raise SetupError(f"cannot load the alignment model at {self.model_path}: {err}") from err
        if not hasattr(model, "get_image_features"):
            raise SetupError(f"{self.model_path}: {type(model).__name__} has no image/text embeddings")
        self._model = model.to(self.device).eval()

    @property
    def _max_text_tokens(self) -> int:
        text_config = getattr(self._model.config, "text_config", self._model.config)
        return int(getattr(text_config, "max_position_embeddings", 77))

    def similarity(self, images: list[np.ndarray], texts: list[str]) -> list[float]:
        """Cosine similarity of each (image, text) pair."""
        import torch

        self._load()
        siglip = "siglip" in self._model.config.model_type
        tokens = self._tokenizer(texts, padding="max_length" if siglip else True, truncation=True,
                                 max_length=self._max_text_tokens, return_tensors="pt").to(self.device)
        pixels = self._processor(images=list(images), return_tensors="pt").to(self.device)
        text_args = {k: v for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
        if siglip:
            text_args.pop("attention_mask", None)  # SigLIP was trained on padded text without a mask
        with torch.no_grad():
            image_emb = _embedding(self._model.get_image_features(pixel_values=pixels["pixel_values"]))
            text_emb = _embedding(self._model.get_text_features(**text_args))
        image_emb = torch.nn.functional.normalize(image_emb.float(), dim=-1)  # [N, D]
        text_emb = torch.nn.functional.normalize(text_emb.float(), dim=-1)  # [N, D]
        return (image_emb * text_emb).sum(dim=-1).tolist()


def _embedding(output):
    """transformers 4 returns the projected tensor; 5 returns an output object carrying it as pooler_output."""
    return output if hasattr(output, "shape") else output.pooler_output
