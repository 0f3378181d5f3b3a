"""S6 category balance: a category (and subcategory) per record, then resampling of the records kept by S5
to the target shares (Nature 55 / Design 27.41 / People 13.21 / Synthetic 5 by default).

Category evidence, first that applies: the input's own `category` field; synthetic shards; the captioner's
Image Type / Style; the classifier hook's top label; a detected face (People); text covering enough of the
image (Design); keywords of the caption; otherwise Nature.

Balancing (`s6.mode`): `weights` (default) keeps every record and gives each a sampling weight so that the
training stream has the target shares (`sample_weight` in the output json, times S7's token weight);
`upsample` writes records of scarce categories several times (at most s6.max_upsample) and drops none;
`downsample` rejects records of abundant categories with reason balance_downsampled (they stay usable for
the S1-S5 training stages); `off` leaves the shares as they come. The report gives the achieved shares.
"""

from __future__ import annotations

from qwenimage.curate import taxonomy
from qwenimage.curate.balance import (category_quotas, category_weights, shares_percent, spread_copies,
                                      stable_rank, upsample_counts)
from qwenimage.curate.config import CurateConfig
from qwenimage.curate.faces import FaceDetector
from qwenimage.curate.hooks import ImageClassifier
from qwenimage.curate.record import SYNTHETIC, Record
from qwenimage.curate.stages.base import Stage, pixels, scored_in_batch


class S6Categorize(Stage):
    """The per-record half of S6 (runs in the workers): labels category, subcategory, category_source."""

    name = "s6"

    def __init__(self, config: CurateConfig):
        self.config, self.max_pixels = config.s6, config.s1.max_pixels
        self.faces = FaceDetector(self.config.face_detector)
        hook = self.config.classifier
        self.classifier = ImageClassifier(hook.model_path, hook.device) if hook.model_path else None

    def process(self, records: list[Record]) -> None:
        if self.classifier is not None:
            labels = scored_in_batch(records, self.name, lambda rs: self.classifier.top_labels(
                [pixels(r, self.max_pixels).rgb for r in rs]))
            for record, label in zip(records, labels):
                if label is not None:
                    record.labels["classifier_label"] = label
        super().process([r for r in records if r.kept])

    def process_one(self, record: Record) -> None:
        image = pixels(record, self.max_pixels)
        record.labels["size"] = [image.width, image.height]
        category, sub, source = self._evidence(record)
        text = " ".join([record.caption(), str((record.labels.get("captioner") or {}).get("Image Type", ""))])
        record.labels.update(category=category, subcategory=sub or taxonomy.subcategory(category, text),
                             category_source=source)

    def _evidence(self, record: Record) -> tuple[str, str | None, str]:
        """(category, subcategory or None, which evidence decided)."""
        given = taxonomy.canonical_category(record.metadata.get("category", ""))
        if given:
            return given, record.metadata.get("subcategory"), "metadata"
        if record.kind == SYNTHETIC:
            return "Synthetic", str(record.metadata.get("strategy") or taxonomy.OTHER), "synthetic"
        captioner = record.labels.get("captioner") or {}
        for source, text in (("captioner", f"{captioner.get('Image Type', '')} {captioner.get('Image Style', '')}"),
                             ("classifier", record.labels.get("classifier_label", ""))):
            found = _from_text(text)
            if found:
                return found[0], found[1], source
        faces = self.faces.face_areas(pixels(record, self.max_pixels).rgb)
        record.score(self.name, faces=len(faces), face_area=round(faces[0], 4) if faces else 0.0)
        if faces and faces[0] >= self.config.min_face_area:
            return "People", None, "face"
        if record.scores.get("s4", {}).get("text_area", 0.0) >= self.config.min_text_area and \
                record.labels.get("language", "none") != "none":
            return "Design", None, "text"
        found = taxonomy.match(record.caption())
        return (found[0], found[1], "caption") if found else ("Nature", None, "default")


def _from_text(text: str) -> tuple[str, str | None] | None:
    """A category named outright ('People'), else the taxonomy's keyword match."""
    direct = taxonomy.canonical_category(text)
    if direct:
        return direct, None
    return taxonomy.match(text) if text.strip() else None


def balance(records: list[Record], config: CurateConfig) -> dict:
    """Balance the records still kept (after S5) by `s6.mode`, in place; returns the S6 report. Each kept
    record gets `labels["balance_weight"]` (weights mode; 1 otherwise) and `labels["repeat"]` (copies to
    write: upsample mode; 1 otherwise)."""
    cfg = config.s6
    by_category: dict[str, list[Record]] = {}
    for record in (r for r in records if r.kept):
        by_category.setdefault(record.labels.get("category", "Nature"), []).append(record)
    supply = {c: len(rs) for c, rs in sorted(by_category.items())}
    total = sum(cfg.shares.values())
    report = {"mode": cfg.mode, "supply": supply,
              "target_shares": {c: round(100 * s / total, 2) for c, s in cfg.shares.items()}}
    for members in by_category.values():
        for record in members:
            record.labels.update(balance_weight=1.0, repeat=1)
    modes = {"weights": _weights, "upsample": _upsample, "downsample": _downsample}
    if cfg.mode in modes:
        report.update(modes[cfg.mode](by_category, supply, cfg))
    report["dropped"] = sum(not r.kept for members in by_category.values() for r in members)
    return report


def _weights(by_category: dict[str, list[Record]], supply: dict[str, int], cfg) -> dict:
    """Keep every record; weight each so that the weighted category shares are the targets."""
    weights = category_weights(supply, cfg.shares)
    for category, members in by_category.items():
        for record in members:
            record.labels["balance_weight"] = round(weights[category], 6)
    return {"category_weights": {c: round(w, 6) for c, w in weights.items()}}


def _upsample(by_category: dict[str, list[Record]], supply: dict[str, int], cfg) -> dict:
    """Keep every record; write those of scarce categories several times (s6.max_upsample at most)."""
    counts = upsample_counts(supply, cfg.shares, cfg.max_upsample)
    for category, members in by_category.items():
        copies = spread_copies([r.id for r in members], counts[category], cfg.seed)
        for record in members:
            record.labels["repeat"] = copies[record.id]
    return {"written": counts}


def _downsample(by_category: dict[str, list[Record]], supply: dict[str, int], cfg) -> dict:
    """Keep as many records per category as the target shares allow (nothing repeats); reject the rest."""
    quotas = category_quotas(supply, cfg.shares, 1.0, cfg.total)
    for category, members in by_category.items():
        chosen = min(quotas.counts.get(category, 0), len(members))
        for record in sorted(members, key=lambda r: stable_rank(r.id, cfg.seed))[chosen:]:
            record.reject("s6", "balance_downsampled", f"{category}: {chosen} of {len(members)} kept for the "
                                                        f"target share")
    total = sum(cfg.shares.values())
    return quotas.to_json(supply, {c: round(100 * s / total, 2) for c, s in cfg.shares.items()})


def achieved_shares(records: list[Record]) -> dict[str, float]:
    """Category shares (percent) of the training stream the output gives: each kept record counts its
    sample weight times its copies."""
    amounts: dict[str, float] = {}
    for record in (r for r in records if r.kept):
        category = record.labels.get("category", "Nature")
        amounts[category] = amounts.get(category, 0.0) + record.labels.get("sample_weight", 1.0) * \
            record.labels.get("repeat", 1)
    return shares_percent(amounts)
