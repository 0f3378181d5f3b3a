"""Model-backed curation steps, each loaded from a local folder the test builds with random weights (no
hub access): CLIP and SigLIP similarity (S3), an image classifier as NSFW / category hook (S1, S6), a
Python function hook (S5), and the Qwen2.5-VL captioner generating end to end (S3)."""

import io

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from qwenimage.curate.config import CurateConfig, load_curate_config
from qwenimage.curate.errors import SetupError
from qwenimage.curate.record import Caption, Record
from qwenimage.curate.stages import S1Preprocess, S3Alignment, S5HighRes, S6Categorize
from qwenimage.tiny import qwen_tokenizer_dir


def photo_record(name: str, caption: str = "a photo", scale: float = 1.0) -> Record:
    image = Image.fromarray(getattr(skdata, name)())
    image = image.resize((round(image.width * scale), round(image.height * scale)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    return Record(id=f"test/{name}", source="test", image_bytes=buffer.getvalue(), captions=[Caption(caption, "raw")])


def _text_and_vision(model_type: str) -> tuple[dict, dict]:
    text = dict(vocab_size=151700, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=64)
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                  patch_size=8)
    return text, vision


@pytest.fixture(scope="module", params=["clip", "siglip"])
def similarity_model_dir(request, tmp_path_factory):
    from transformers import (AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel, SiglipConfig,
                              SiglipImageProcessor, SiglipModel)

    text, vision = _text_and_vision(request.param)
    if request.param == "clip":
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8))
        processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    else:
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
        processor = SiglipImageProcessor(size={"height": 32, "width": 32})
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir())).save_pretrained(folder)
    return folder


def test_similarity_models_filter_raw_captions(similarity_model_dir):
    def run(threshold: float) -> list[Record]:
        config = load_curate_config(None, [f"s3.alignment=[{{model_path: '{similarity_model_dir}', "
                                           f"min_similarity: {threshold}}}]"])
        batch = [photo_record("astronaut", "an astronaut"), photo_record("coffee", "a cup of coffee")]
        return S3Alignment(config)(batch)

    kept = run(-1.0)
    assert all(r.kept and -1 <= r.scores["s3"]["similarity_0"] <= 1 for r in kept)
    dropped = run(1.01)
    assert all(r.rejection.reason == "misaligned_caption" for r in dropped)


def test_a_missing_model_folder_stops_the_run_instead_of_rejecting_records(tmp_path):
    config = load_curate_config(None, [f"s3.alignment=[{{model_path: '{tmp_path / 'nothing'}'}}]"])
    with pytest.raises(SetupError, match="not found"):
        S3Alignment(config)([photo_record("astronaut")])


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                       image_size=32, patch_size=8, num_labels=2, id2label={0: "portrait", 1: "nsfw"},
                       label2id={"portrait": 0, "nsfw": 1})
    folder = tmp_path_factory.mktemp("vit")
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def test_classifier_hook_as_nsfw_filter_and_category_source(classifier_dir):
    strict = load_curate_config(None, [f"s1.nsfw.model_path={classifier_dir}", "s1.nsfw.threshold=0.0"])
    record = S1Preprocess(strict)([photo_record("astronaut")])[0]
    assert record.rejection.reason == "nsfw" and 0 <= record.scores["s1"]["nsfw"] <= 1
    lenient = load_curate_config(None, [f"s1.nsfw.model_path={classifier_dir}", "s1.nsfw.threshold=1.01"])
    assert S1Preprocess(lenient)([photo_record("astronaut")])[0].kept
    categorize = load_curate_config(None, [f"s6.classifier.model_path={classifier_dir}"])
    record = S6Categorize(categorize)([photo_record("coffee")])[0]
    assert record.labels["classifier_label"] in ("portrait", "nsfw")
    if record.labels["classifier_label"] == "portrait":
        assert (record.labels["category"], record.labels["category_source"]) == ("People", "classifier")


def brightness(images):
    return [float(np.mean(image)) / 255 for image in images]


def test_python_function_hook_scores_aesthetics():
    config = load_curate_config(None, ["s5.aesthetic.function=tests.unit.test_curate_models:brightness",
                                       "s5.aesthetic.threshold=0.99"])
    record = S5HighRes(config)([photo_record("astronaut", scale=1.3)])[0]
    assert record.rejection.reason == "low_aesthetic" and 0 < record.scores["s5"]["aesthetic"] < 1


def test_qwen_vl_captioner_generates_and_bad_json_keeps_the_raw_caption(tiny_pipeline_dir):
    config = load_curate_config(None, [f"s3.captioner.model_path={tiny_pipeline_dir}", "s3.captioner.max_new_tokens=6",
                                       "s3.captioner.max_pixels=12544"])
    stage = S3Alignment(config)
    answers = stage.captioner.answer([skdata.astronaut()])
    assert isinstance(answers[0], str)  # random weights: text, not JSON
    record = stage([photo_record("astronaut", "an astronaut")])[0]
    assert record.kept and "captioner_error" in record.labels and record.labels["caption_source"] == "raw"


def test_captioner_json_feeds_recaption_fused_caption_watermarks_and_categories(monkeypatch):
    config = load_curate_config(None, ["s3.captioner.model_path=/unused"])
    stage = S3Alignment(config)
    answer = ('{"Caption": "An astronaut in a white suit.", "Image Type": "portrait photo", "Image Style": "realistic",'
              ' "Watermark List": ["NASA"], "Abnormal Element": "no"}')
    monkeypatch.setattr(stage.captioner, "answer", lambda images: [answer] * len(images))
    record = stage([photo_record("astronaut", "Eileen Collins", scale=1.3)])[0]
    assert [c.source for c in record.captions] == ["raw", "recaption", "fused"]
    assert record.labels["caption_source"] == "fused" and "Eileen Collins" in record.caption("fused")
    S6Categorize(CurateConfig())([record])
    assert (record.labels["category"], record.labels["category_source"]) == ("People", "captioner")
    S5HighRes(CurateConfig())([record])
    assert record.rejection.reason == "watermark"
