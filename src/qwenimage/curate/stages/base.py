"""What every stage operator shares: a callable over a batch of records that skips rejected records,
decodes pixels once per worker, and turns a failure on one record into a rejection of that record.

An operator is a plain picklable object: `records = operator(records)`. Models load lazily inside it, once
per worker process (local executor) or actor (Ray Data). Only SetupError (a model the config names cannot
be loaded) escapes: it stops the run instead of rejecting every record.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from qwenimage.curate.decode import Decoded, TooManyPixels, decode
from qwenimage.curate.errors import SetupError
from qwenimage.curate.record import SYNTHETIC, Record
from qwenimage.images import ImageError

log = logging.getLogger(__name__)


class Stage:
    """Base operator. Subclasses set `name` and implement `process(records)` or `process_one(record)`."""

    name = "s0"
    synthetic_enters = True  # False for S1-S3: synthetic data join at S4

    def applies_to(self, record: Record) -> bool:
        return record.kept and (self.synthetic_enters or record.kind != SYNTHETIC)

    def __call__(self, batch: list[Record]) -> list[Record]:
        pending = [r for r in batch if self.applies_to(r)]
        if pending:
            self.process(pending)
        return batch

    def process(self, records: list[Record]) -> None:
        """Default: each record alone through `self.process_one(record)`, which such subclasses define."""
        for record in records:
            guarded(record, self.name, self.process_one)


def guarded(record: Record, stage: str, fn: Callable[[Record], None]) -> None:
    """fn(record); an unreadable image or any unexpected error rejects the record instead of the run."""
    try:
        fn(record)
    except SetupError:
        raise
    except TooManyPixels as err:
        record.reject(stage, "too_many_pixels", str(err))
    except (ImageError, OSError) as err:
        record.reject(stage, "broken_file", str(err)[:300])
    except Exception as err:  # noqa: BLE001 - a bad record must never stop the run
        log.warning("record %s failed in %s: %s: %s", record.id, stage, type(err).__name__, err)
        record.reject(stage, "error", f"{type(err).__name__}: {err}"[:300])


def pixels(record: Record, max_pixels: int, draft_side: int | None = None) -> Decoded:
    """The record's decoded image, decoded on first use in this worker."""
    if record.decoded is None:
        record.decoded = decode(record.read_bytes(), max_pixels, draft_side, record.where())
    return record.decoded


def scored_in_batch(records: list[Record], stage: str, score: Callable[[list[Record]], list]) -> list:
    """score(records) in one call; if the batch fails, one call per record so that a bad record is isolated.
    Records that fail alone are rejected; their value is None."""
    try:
        return list(score(records))
    except SetupError:
        raise
    except Exception:  # noqa: BLE001 - fall back to isolating the culprit
        values: dict[str, Any] = {}

        def score_one(record: Record) -> None:
            values[record.id] = score([record])[0]

        for record in records:
            guarded(record, stage, score_one)
        return [values.get(record.id) for record in records]
