"""S3 image-text alignment: invalid and overlong captions, CLIP/SigLIP similarity of raw captions,
recaptioning with Qwen2.5-VL, and the raw / recaption / fused caption split.

A bad caption is dropped, not the record, as long as another valid caption remains; a record left without
one is rejected with the last caption's reason (empty_caption, invalid_caption, repetitive_caption,
caption_too_long, misaligned_caption) or no_caption.
"""

from __future__ import annotations

from qwenimage.curate.alignment import SimilarityModel
from qwenimage.curate.captioner import Captioner, CaptionFormatError, parse_captioner_json
from qwenimage.curate.captions import CaptionChecker, TokenCounter, choose_caption, fuse
from qwenimage.curate.config import CurateConfig
from qwenimage.curate.decode import resize_to_area
from qwenimage.curate.record import Caption, Record
from qwenimage.curate.stages.base import Stage, guarded, pixels, scored_in_batch

ALIGNMENT_SIDE = 336  # similarity models get a ~336^2 copy; their processors resize again


def _dropped(record: Record, caption: Caption, reason: str) -> None:
    record.labels.setdefault("dropped_captions", []).append(
        {"source": caption.source, "reason": reason, "text": caption.text[:200]})


class S3Alignment(Stage):
    name = "s3"
    synthetic_enters = False

    def __init__(self, config: CurateConfig):
        self.config, self.max_pixels = config.s3, config.s1.max_pixels
        self.checker = CaptionChecker(self.config.invalid_patterns, self.config.max_word_repeats)
        self.tokens = TokenCounter(self.config.tokenizer)
        self.models = [(m, SimilarityModel(m.model_path, m.device)) for m in self.config.alignment]
        c = self.config.captioner
        self.captioner = Captioner(c.model_path, c.max_new_tokens, c.max_pixels, c.device, c.dtype) \
            if c.model_path else None

    def process(self, records: list[Record]) -> None:
        for record in records:
            guarded(record, self.name, self._check_captions)
        for index, (settings, model) in enumerate(self.models):
            self._align(records, settings, model, f"similarity_{index}")
        if self.captioner is not None:
            self._recaption([r for r in records if r.kept])
        for record in records:
            if record.kept:
                guarded(record, self.name, self._settle)

    def _keep(self, record: Record, caption: Caption) -> bool:
        """Score the caption's token count; False (and noted in labels) if it is invalid or too long."""
        tokens = self.tokens.count(caption.text)
        record.score(self.name, **{f"{caption.source}_tokens": tokens})
        problem = self.checker.problem(caption.text)
        problem = problem or ("caption_too_long" if tokens > self.config.max_caption_tokens else None)
        if problem:
            _dropped(record, caption, problem)
        return problem is None

    def _check_captions(self, record: Record) -> None:
        record.captions = [caption for caption in record.captions if self._keep(record, caption)]

    def _images(self, records: list[Record]) -> list:
        return [resize_to_area(pixels(r, self.max_pixels).rgb, ALIGNMENT_SIDE) for r in records]

    def _align(self, records: list[Record], settings, model: SimilarityModel, name: str) -> None:
        """Score every raw caption with one similarity model; drop the raw caption below its threshold."""
        todo = [r for r in records if r.kept and r.caption("raw")]
        values = scored_in_batch(todo, self.name,
                                 lambda rs: model.similarity(self._images(rs), [r.caption("raw") for r in rs]))
        for record, value in zip(todo, values):
            if value is None:
                continue
            record.score(self.name, **{name: round(value, 4)})
            if value < settings.min_similarity:
                _dropped(record, next(c for c in record.captions if c.source == "raw"), "misaligned_caption")
                record.captions = [c for c in record.captions if c.source != "raw"]

    def _recaption(self, records: list[Record]) -> None:
        answers = scored_in_batch(records, self.name,
                                  lambda rs: self.captioner.answer([pixels(r, self.max_pixels).rgb for r in rs]))
        for record, answer in zip(records, answers):
            if answer is None:
                continue
            try:
                output = parse_captioner_json(answer)
            except CaptionFormatError as err:
                record.labels["captioner_error"] = str(err)
                continue
            record.labels["captioner"] = output.to_json()
            caption = Caption(output.caption, "recaption")
            if self._keep(record, caption):
                record.captions.append(caption)

    def _settle(self, record: Record) -> None:
        raw, recaption = record.caption("raw"), record.caption("recaption")
        if raw and recaption:
            record.captions.append(Caption(fuse(raw, recaption), "fused"))
        chosen = choose_caption(record.captions, self.config.caption_source)
        if chosen is not None:
            record.labels["caption_source"] = chosen.source
        elif self.config.require_caption:
            dropped = record.labels.get("dropped_captions", [])
            if dropped:
                last = dropped[-1]
                record.reject(self.name, last["reason"], f"{last['source']} caption {last['text'][:80]!r}")
            else:
                record.reject(self.name, "no_caption", f"no {self.config.caption_source} caption")
