"""The web UI's logic without Gradio or a browser: form values to API requests, the painted mask, and a
form submission through the server's own scheduler (a fake worker)."""

from __future__ import annotations

import asyncio

import pytest
from PIL import Image, ImageDraw

from qwenimage.pipelines.sizes import ASPECT_PRESETS
from qwenimage.serve import ServeConfig
from qwenimage.serve.errors import ServeError
from qwenimage.serve.metrics import ServeMetrics
from qwenimage.serve.scheduler import Done, Partial, Scheduler
from qwenimage.serve.serving import Serving
from qwenimage.serve.ui_jobs import (SEED_PICK_RANGE, aspect_size, caption, editor_inputs, form_params,
                                     painted_mask, run_job)
from tests.unit.test_serve import FakeWorker


@pytest.mark.parametrize("aspect", list(ASPECT_PRESETS))
def test_aspect_size_keeps_the_area_and_takes_the_shape(aspect):
    width, height = aspect_size(aspect, 512 * 512)
    preset_w, preset_h = ASPECT_PRESETS[aspect]
    assert width % 16 == 0 and height % 16 == 0
    assert abs(width * height / (512 * 512) - 1) < 0.08
    assert abs(width / height - preset_w / preset_h) < 0.06


def test_aspect_size_names_a_bad_aspect():
    with pytest.raises(ValueError, match="'5:4'"):
        aspect_size("5:4", 1024)


def test_form_params_maps_the_form_onto_the_api_body():
    params = form_params("a fox", "", 64.0, 48.0, 2.0, 4.0, 7.0, 2.0, 1.0)
    assert (params.size, params.num_inference_steps, params.seed, params.n, params.partial_images) == \
        ("64x48", 2, 7, 2, 1)
    assert params.negative_prompt is None  # empty box: the model's default
    auto = form_params("a fox", " ", 0, 0, 2, 4, -1, 1, 0)
    assert auto.size == "auto" and auto.negative_prompt == " " and 0 <= auto.seed < SEED_PICK_RANGE


@pytest.mark.parametrize(("args", "param"), [
    (("a fox", None, 64, 0, 2, 4, 1, 1, 0), "size"),  # one side only
    (("a fox", None, 64, 64, 2.5, 4, 1, 1, 0), "steps"),
    (("a fox", None, 64, 64, 2, 4, 1, 11, 0), "n"),  # over the API's bound
    (("  ", None, 64, 64, 2, 4, 1, 1, 0), "prompt"),
])
def test_form_params_names_the_bad_field(args, param):
    with pytest.raises(ServeError) as err:
        form_params(*args)
    assert err.value.status == 400 and err.value.param == param


def stroke_layer(size=(32, 32), box=(4, 4, 12, 12)) -> Image.Image:
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).rectangle(box, fill=(255, 47, 109, 255))
    return layer


def test_painted_mask_is_white_where_strokes_are():
    assert painted_mask([Image.new("RGBA", (32, 32), (0, 0, 0, 0))], (32, 32)) is None
    mask = painted_mask([stroke_layer()], (32, 32))
    assert mask.mode == "RGB" and mask.getpixel((8, 8)) == (255, 255, 255) and mask.getpixel((20, 20)) == (0, 0, 0)
    assert painted_mask([stroke_layer((16, 16), (0, 0, 7, 7))], (32, 32)).getbbox() == (0, 0, 16, 16)


def test_editor_inputs(tmp_path):
    picture = Image.new("RGBA", (32, 32), (10, 20, 30, 255))
    extra = tmp_path / "extra.png"
    Image.new("RGB", (48, 32), "white").save(extra)
    images, mask = editor_inputs(picture, [], [str(extra)], max_pixels=10_000)
    assert [i.size for i in images] == [(32, 32), (48, 32)] and all(i.mode == "RGB" for i in images) and mask is None
    images, mask = editor_inputs(picture, [stroke_layer()], [], max_pixels=10_000)
    assert len(images) == 1 and mask.size == (32, 32)
    refused = [((None, [], [], 10_000), "image"),  # nothing uploaded
               ((picture, [stroke_layer()], [str(extra)], 10_000), "mask"),  # a mask with two images
               ((picture, [], [], 100), "image")]  # over the pixel limit
    for args, param in refused:
        with pytest.raises(ServeError) as err:
            editor_inputs(*args)
        assert err.value.param == param


def test_a_form_submission_runs_on_the_servers_scheduler():
    worker, metrics = FakeWorker(), ServeMetrics()
    scheduler = Scheduler(worker.run, metrics, max_batch=4, max_queue=4)
    serving = Serving(ServeConfig(), worker, scheduler, store=None, metrics=metrics)
    params = form_params("a fox", None, 32, 32, 2, 4, 5, 2, 2)

    async def collect():
        return [event async for event in run_job(serving, params)]

    scheduler.start()
    try:
        events = asyncio.run(collect())
    finally:
        scheduler.stop()
    partials = [e for _, e in events if isinstance(e, Partial)]
    requests, done = events[-1]
    assert isinstance(done, Done) and len(done.images) == 2 and worker.batches == [2]
    assert sorted((p.index, p.partial_index) for p in partials) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [r.seed for r in requests] == [5, 6] and "seed 6" in caption(requests[1], done.images[1])
    with pytest.raises(ServeError, match="multiple of 16"):  # admission is the worker's, as for the API
        asyncio.run(collect_one(serving, form_params("a fox", None, 40, 32, 2, 4, 5, 1, 0)))


async def collect_one(serving, params):
    async for event in run_job(serving, params):
        return event


@pytest.mark.parametrize("edit_cfg, expected", [(1.0, 1.0), (None, 4.0)])
def test_the_edit_tabs_cfg_starts_at_the_models_edit_default(edit_cfg, expected):
    from dataclasses import replace

    from qwenimage.serve.ui import build_ui

    worker, metrics = FakeWorker(), ServeMetrics()
    worker.defaults = replace(worker.defaults, true_cfg_scale=4.0, edit_true_cfg_scale=edit_cfg)
    scheduler = Scheduler(worker.run, metrics, max_batch=4, max_queue=4)
    blocks = build_ui(Serving(ServeConfig(), worker, scheduler, store=None, metrics=metrics))
    sliders = {b.elem_id: b.value for b in blocks.blocks.values() if str(getattr(b, "elem_id", "")).endswith("-cfg")}
    assert sliders["t2i-cfg"] == 4.0 and sliders["edit-cfg"] == expected
