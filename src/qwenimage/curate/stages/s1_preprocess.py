"""S1 preprocessing (256p): broken and abnormally small files, resolution, aspect ratio, EXIF orientation,
hashes for deduplication, NSFW.

Per record (in the workers): reasons empty_file, small_file, broken_file, too_many_pixels, low_resolution,
aspect_ratio, nsfw (and dangling_symlink, decided when the folder is read). Deduplication needs every record's hashes and runs on the driver once S2-S5 judged each
copy, so that the best surviving copy is kept (`apply_duplicates`): reasons duplicate_exact, duplicate_near.
"""

from __future__ import annotations

import hashlib
from collections import Counter

from qwenimage.curate.buckets import nearest_ratio, parse_ratio
from qwenimage.curate.config import CurateConfig
from qwenimage.curate.dedup import HashedImage, find_duplicates, phash64
from qwenimage.curate.hooks import Scorer
from qwenimage.curate.metrics import grey
from qwenimage.curate.record import Record, Rejection
from qwenimage.curate.stages.base import Stage, pixels, scored_in_batch


class S1Preprocess(Stage):
    name = "s1"
    synthetic_enters = False

    def __init__(self, config: CurateConfig):
        self.config = config.s1
        for ratio in self.config.aspect_ratios:
            parse_ratio(ratio)
        self.nsfw = Scorer(self.config.nsfw)

    def process(self, records: list[Record]) -> None:
        super().process(records)
        survivors = [r for r in records if r.kept]
        if self.nsfw.enabled and survivors:
            scores = scored_in_batch(survivors, self.name, lambda rs: self.nsfw([r.decoded.rgb for r in rs]))
            for record, score in zip(survivors, scores):
                if score is not None:
                    record.score(self.name, nsfw=round(score, 4))
                    if score >= self.config.nsfw.threshold:
                        record.reject(self.name, "nsfw", f"score {score:.3f} >= {self.config.nsfw.threshold}")

    def process_one(self, record: Record) -> None:
        cfg = self.config
        data = record.read_bytes()
        record.score(self.name, file_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
        if len(data) < cfg.min_file_bytes:
            reason = "empty_file" if not data else "small_file"
            record.reject(self.name, reason, f"{len(data)} bytes < {cfg.min_file_bytes}")
            return
        image = pixels(record, cfg.max_pixels, cfg.decode_side)  # broken files raise: guarded rejects them
        ratio, distance = nearest_ratio(image.width, image.height, cfg.aspect_ratios)
        record.score(self.name, width=image.width, height=image.height, format=image.format, mode=image.mode,
                     exif_orientation=image.orientation, aspect=ratio, phash=f"{phash64(grey(image.rgb)):016x}")
        size = f"{image.width}x{image.height}"
        if min(image.width, image.height) < cfg.min_side:
            record.reject(self.name, "low_resolution", f"{size}: shorter side < {cfg.min_side}")
        elif distance > cfg.aspect_tolerance:
            record.reject(self.name, "aspect_ratio", f"{size} is not near any of {', '.join(cfg.aspect_ratios)}")


PER_IMAGE_STAGES = 5  # S1-S5 judge each image alone: deduplication compares how far the copies got


def hashed(record: Record) -> HashedImage | None:
    """The record's hashes and how many per-image stages it passed, if S1 hashed and kept it."""
    s1 = record.scores.get("s1", {})
    if "phash" not in s1 or (record.rejection is not None and record.rejection.stage == "s1"):
        return None
    return HashedImage(record.id, s1["sha256"], int(s1["phash"], 16), s1["width"] * s1["height"], s1["file_bytes"],
                       min(record.stage_passed, PER_IMAGE_STAGES))


def duplicates(records: list[Record], config: CurateConfig) -> dict[str, tuple[str, str, int]]:
    """id -> (reason, kept id, distance) over the records S1 kept, once S2-S5 judged them (on the driver)."""
    if not config.s1.dedup:
        return {}
    images = [h for h in map(hashed, records) if h is not None]
    return find_duplicates(images, config.s1.near_duplicate_distance, config.s1.lsh_bands)


def kept_because(kept: Record, dropped: Record) -> tuple[str, str]:
    """(key, words): why `kept` was preferred to its duplicate `dropped` (HashedImage.preference's order)."""
    a, b = hashed(kept), hashed(dropped)
    if a.stages_passed != b.stages_passed:
        failed = f"; this copy failed {dropped.rejection.stage} {dropped.rejection.reason}" if dropped.rejection else ""
        return "more_checks_passed", f"it passed more checks (S1-S{a.stages_passed}){failed}"
    if a.pixels != b.pixels:
        return "larger_image", f"it is the larger image ({a.pixels} vs {b.pixels} pixels)"
    if a.file_bytes != b.file_bytes:
        return "larger_file", f"it is the larger file ({a.file_bytes} vs {b.file_bytes} bytes)"
    return "first_id", "the copies are equal: the first id is kept"


def apply_duplicates(records: list[Record], found: dict[str, tuple[str, str, int]]) -> None:
    """Reject every duplicate at S1 (replacing a later stage's rejection: a duplicate trains at no stage),
    naming the copy kept and why (`labels["duplicate_kept_because"]`: key and words)."""
    by_id = {r.id: r for r in records}
    for record in records:
        if record.id in found:
            reason, kept_id, distance = found[record.id]
            key, why = kept_because(by_id[kept_id], record)
            record.score("s1", duplicate_of=kept_id, phash_distance=distance)
            record.labels["duplicate_kept_because"] = [key, why]
            record.rejection = Rejection("s1", reason, f"duplicate of {kept_id} (pHash distance {distance}); "
                                                       f"kept that copy: {why}")


def duplicate_report(records: list[Record], found: dict[str, tuple[str, str, int]], examples: int = 50) -> dict:
    """For the funnel report: how many duplicates, why their kept copies won, and the first pairs."""
    dropped = sorted((r for r in records if r.id in found), key=lambda r: r.id)
    pairs = [{"id": r.id, "kept": found[r.id][1], "reason": found[r.id][0],
              "why": r.labels["duplicate_kept_because"][1]} for r in dropped[:examples]]
    return {"duplicates": len(found), "by_reason": dict(sorted(Counter(v[0] for v in found.values()).items())),
            "kept_because": dict(sorted(Counter(r.labels["duplicate_kept_because"][0] for r in dropped).items())),
            "examples": pairs}
