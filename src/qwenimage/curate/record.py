"""The record that flows through curation: one image with its captions, scores and, if dropped, why.

A record is rejected by at most one stage (the first that drops it); later stages skip it. The stage that
rejected it also tells which training stages may still use it: a record rejected at S5 was good enough for
S1-S4 (`stage_passed` is 4). Scores are plain JSON values, grouped by stage: `scores["s2"]["clarity"]`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAGES = ("s1", "s2", "s3", "s4", "s5", "s6", "s7")
STAGE_TITLES = {
    "s1": "S1 preprocessing (256p)", "s2": "S2 image quality", "s3": "S3 image-text alignment",
    "s4": "S4 text rendering", "s5": "S5 high resolution (640p)", "s6": "S6 category balance",
    "s7": "S7 multi-scale (256p, 640p, 1328p)",
}
CAPTION_SOURCES = ("raw", "recaption", "fused")
WEB, SYNTHETIC = "web", "synthetic"


@dataclass
class Caption:
    text: str
    source: str  # raw | recaption | fused

    def __post_init__(self) -> None:
        if self.source not in CAPTION_SOURCES:
            raise ValueError(f"caption source {self.source!r} is not one of {CAPTION_SOURCES}")


@dataclass
class Rejection:
    stage: str  # s1 .. s7
    reason: str  # short key, e.g. "low_resolution"
    detail: str = ""  # human-readable specifics, e.g. "200x180 < 256"


@dataclass
class Record:
    id: str  # unique and stable across runs: "<input name>/<key>"
    source: str  # the input (folder, manifest, shard) it was read from
    kind: str = WEB  # web | synthetic (synthetic records enter at S4, as in the report)
    image_bytes: bytes | None = None  # the encoded file; dropped once a shard is assessed
    image_path: str | None = None  # where the bytes come from when the input references files
    member: str | None = None  # the image's member name when the input is a tar shard
    captions: list[Caption] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)  # sidecar / manifest / shard json fields
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage -> name -> value
    labels: dict[str, Any] = field(default_factory=dict)  # category, language, buckets, captioner json, ...
    rejection: Rejection | None = None
    thumbnail: str | None = None  # base64 JPEG of a rejected image, for the report
    decoded: Any = field(default=None, repr=False, compare=False)  # transient curate.decode.Decoded

    @property
    def kept(self) -> bool:
        return self.rejection is None

    @property
    def key(self) -> str:
        """A file-name-safe key for output shards (WebDataset keys may not contain dots)."""
        return hashlib.sha1(self.id.encode("utf-8")).hexdigest()[:20]

    @property
    def stage_passed(self) -> int:
        """How many stages the record passed: 0 (rejected at S1) .. 7 (kept to the end)."""
        return STAGES.index(self.rejection.stage) if self.rejection else len(STAGES)

    def reject(self, stage: str, reason: str, detail: str = "") -> None:
        if self.rejection is None:
            self.rejection = Rejection(stage, reason, detail)

    def score(self, stage: str, **values: Any) -> None:
        self.scores.setdefault(stage, {}).update(values)

    def caption(self, source: str | None = None) -> str:
        """The text of the first caption (of `source` if given), or ""."""
        return next((c.text for c in self.captions if source is None or c.source == source), "")

    def chosen_caption(self) -> Caption | None:
        """The caption S3 chose (labels['caption_source']), else the first one (synthetic data skip S3)."""
        source = self.labels.get("caption_source")
        return next((c for c in self.captions if c.source == source), self.captions[0] if self.captions else None)

    def where(self) -> str:
        """The image's file, or `shard.tar:member`, for messages."""
        if self.image_path is not None:
            return self.image_path
        return f"{self.source}:{self.member}" if self.member else f"{self.source} ({self.id})"

    def read_bytes(self) -> bytes:
        if self.image_bytes is not None:
            return self.image_bytes
        if self.image_path is None:
            url = self.metadata.get("url") or self.metadata.get("URL")
            hint = f" (remote {url} is not fetched here: download it first, e.g. with img2dataset)" if url else ""
            raise OSError(f"no image: the record has neither bytes nor a file path{hint}")
        return Path(self.image_path).read_bytes()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["decoded"] = None  # pixels never travel between processes
        return state

    def to_json(self) -> dict:
        """Everything but the image (bytes and pixels)."""
        return {
            "id": self.id, "source": self.source, "kind": self.kind, "image_path": self.image_path,
            "member": self.member,
            "captions": [{"text": c.text, "source": c.source} for c in self.captions],
            "metadata": self.metadata, "scores": self.scores, "labels": self.labels,
            "rejection": None if self.rejection is None else vars(self.rejection).copy(),
            "thumbnail": self.thumbnail,
        }

    @classmethod
    def from_json(cls, data: dict) -> Record:
        rejection = data.get("rejection")
        return cls(id=data["id"], source=data["source"], kind=data.get("kind", WEB),
                   image_path=data.get("image_path"), member=data.get("member"),
                   captions=[Caption(**c) for c in data.get("captions", [])],
                   metadata=data.get("metadata", {}), scores=data.get("scores", {}), labels=data.get("labels", {}),
                   rejection=None if rejection is None else Rejection(**rejection),
                   thumbnail=data.get("thumbnail"))
