"""Stage operators: a bad record is rejected with a reason and never stops the batch, results do not depend
on how records are batched, synthetic records skip S1-S3, and a missing model stops the run."""

import io

import pytest
from PIL import Image
from skimage import data as skdata

from qwenimage.curate.config import CurateConfig
from qwenimage.curate.errors import SetupError
from qwenimage.curate.phases import run_operators
from qwenimage.curate.record import SYNTHETIC, Caption, Record
from qwenimage.curate.stages import S1Preprocess, S2Quality, S3Alignment, S4Text
from qwenimage.curate.stages.base import Stage


def record(name: str, data: bytes | None = None, path: str | None = None, kind: str = "web") -> Record:
    return Record(id=f"t/{name}", source="t", image_bytes=data, image_path=path, kind=kind,
                  captions=[Caption("a photo of something", "raw")])


def jpeg(rgb) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_unreadable_records_are_rejected_with_reasons_and_the_rest_go_on(tmp_path):
    batch = [record("garbage", b"GIF89a" + b"\x00" * 5000), record("missing", path=str(tmp_path / "nope.jpg")),
             record("url-only"), record("good", jpeg(skdata.astronaut()))]
    batch[2].metadata["url"] = "https://example.com/x.jpg"
    S1Preprocess(CurateConfig())(batch)
    assert [r.rejection and r.rejection.reason for r in batch] == ["broken_file", "broken_file", "broken_file", None]
    assert "img2dataset" in batch[2].rejection.detail


class Exploding(Stage):
    name = "s2"

    def process_one(self, record):
        if record.id.endswith("bad"):
            raise ZeroDivisionError("boom")
        record.score(self.name, fine=1)


class NeedsAModel(Stage):
    name = "s3"

    def process_one(self, record):
        raise SetupError("model folder not found")


def test_unexpected_errors_reject_one_record_but_setup_errors_stop_the_run():
    batch = Exploding()([record("bad"), record("ok")])
    assert batch[0].rejection.reason == "error" and "ZeroDivisionError" in batch[0].rejection.detail
    assert batch[1].kept and batch[1].scores["s2"]["fine"] == 1
    with pytest.raises(SetupError):
        NeedsAModel()([record("x")])


def test_results_do_not_depend_on_batching():
    photos = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket(), skdata.immunohistochemistry()]
    operators = [S1Preprocess(CurateConfig()), S2Quality(CurateConfig())]
    one = run_operators([record(str(i), jpeg(p)) for i, p in enumerate(photos)], operators, batch_size=1)
    all_ = run_operators([record(str(i), jpeg(p)) for i, p in enumerate(photos)], operators, batch_size=16)
    assert [r.to_json() for r in one] == [r.to_json() for r in all_]


def test_synthetic_records_skip_s1_to_s3_and_bring_their_own_text():
    buffer = io.BytesIO()
    Image.new("RGB", (800, 800), "white").save(buffer, "PNG")
    lines = [{"text": "通义千问", "box": [100, 100, 500, 200]}]
    meta = {"text": "通义千问", "width": 800, "height": 800, "lines": lines}
    synthetic = Record(id="s/1", source="s", kind=SYNTHETIC, image_bytes=buffer.getvalue(), metadata=meta)
    config = CurateConfig()
    run_operators([synthetic], [S1Preprocess(config), S2Quality(config), S3Alignment(config), S4Text(config)], 4)
    assert synthetic.kept and set(synthetic.scores) == {"s4"}  # a white page would fail S2; it never saw it
    assert synthetic.labels["language"] == "chinese" and synthetic.scores["s4"]["char_height"] == 0.125
