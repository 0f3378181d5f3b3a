"""Stage operators: a bad record is rejected with a reason and never stops the batch, results do not depend
on how records are batched, synthetic records skip S1-S3, and a missing model stops the run."""

import io

import numpy as np
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


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def slide(size=(1024, 768)) -> Image.Image:
    """A slide: white page, a coloured title bar, a few lines of dark text (flat colours: a graphic)."""
    from PIL import ImageDraw, ImageFont

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, size[0], size[1] // 6), fill=(30, 80, 160))
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 36)
    draw.text((40, 30), "Quarterly review", fill="white", font=font)
    for row in range(5):
        draw.text((60, 200 + 80 * row), f"- point number {row + 1} of the plan", fill=(40, 40, 40), font=font)
    return image


def test_s2_judges_graphics_as_graphics_and_photos_as_photos():
    config = CurateConfig()
    design = record("slide", png(slide()))
    photo = record("photo", jpeg(skdata.astronaut()))
    buffer = io.BytesIO()
    Image.new("RGB", (512, 512), (90, 140, 200)).save(buffer, "JPEG", quality=100)
    blank = record("blank", buffer.getvalue())  # one colour, no content: blank even for a graphic
    run_operators([design, photo, blank], [S1Preprocess(config), S2Quality(config)], 4)
    assert design.kept and design.labels["look"] == "graphic", design.rejection
    assert design.scores["s2"]["entropy"] < config.s2.min_entropy  # a photo this flat would be rejected
    assert photo.kept and photo.labels["look"] == "photo"
    assert blank.rejection.reason == "low_entropy" and "(photo)" in blank.rejection.detail  # flat, not crisp
    declared = record("declared", jpeg(skdata.coffee()))
    declared.metadata["category"] = "design"  # the input says what it is: no measuring
    S2Quality(config)([declared])
    assert declared.labels["look"] == "graphic"
    as_photo = record("slide-as-photo", png(slide()))
    config.s2.graphic.min_flat_fraction = 1.0  # nothing is a graphic: the photo thresholds apply
    S2Quality(config)([as_photo])
    assert as_photo.rejection.reason == "low_entropy"


def synthetic_paragraph(lines: int, size: int = 400) -> Record:
    """A synth record whose json places `lines` lines of 10 px (1/40 of the side: not small text)."""
    meta = {"text": "\n".join(["一行文字"] * lines), "width": size, "height": size,
            "lines": [{"text": "一行文字", "box": [20, 10 + 9 * i, 380, 20 + 9 * i]} for i in range(lines)]}
    return Record(id=f"s/{lines}", source="s", kind=SYNTHETIC, image_bytes=png(slide((size, size))), metadata=meta)


def test_s4_leaves_the_synth_engines_dense_paragraphs_alone_unless_asked():
    config = CurateConfig()
    dense = synthetic_paragraph(42)  # more lines than s4.max_text_lines
    S4Text(config)([dense])
    assert dense.kept and dense.scores["s4"]["text_boxes"] == 42
    config.s4.synthetic_dense_text = True
    strict = synthetic_paragraph(42)
    S4Text(config)([strict])
    assert strict.rejection.reason == "dense_text"


def test_s5_keeps_small_images_for_the_lower_tiers_and_does_not_judge_graphic_backgrounds():
    from qwenimage.curate.stages import S5HighRes, S6Categorize, multiscale

    config = CurateConfig()
    small = record("small", jpeg(np.asarray(Image.fromarray(skdata.astronaut()).resize((512, 512)))))
    white_slide = record("slide", png(slide()))
    batch = run_operators([small, white_slide], [S1Preprocess(config), S2Quality(config), S5HighRes(config),
                                                 S6Categorize(config)], 4)
    assert all(r.kept for r in batch), [r.rejection for r in batch]
    assert small.labels["high_resolution"] is False and white_slide.labels["high_resolution"] is True
    assert white_slide.scores["s5"]["bright_fraction"] > config.s5.max_bright_fraction  # white by design
    multiscale(batch, config)
    assert set(small.labels["buckets"]) == {"256"} and "640" in white_slide.labels["buckets"]
    config.s5.judge_graphic_exposure = True
    judged = run_operators([record("slide2", png(slide()))], [S1Preprocess(config), S2Quality(config),
                                                              S5HighRes(config)], 4)
    assert judged[0].rejection.reason == "overexposed"
