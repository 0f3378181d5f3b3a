"""The web UI (Gradio): `qwenimage ui`, and `/ui` on `qwenimage serve`.

Two tabs, text to image and edit (one or several images; strokes painted on the picture are an inpainting
mask), live x0 previews while sampling, and a history of the page's results with the parameters that made
them. Every request goes through `app.state.serving` (see ui_jobs.py): the scheduler and worker behind
the HTTP API, so UI and API requests share batches, queue and limits, and the UI holds no pipeline of its own.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import AsyncIterator, Callable

import gradio as gr
from fastapi import FastAPI
from PIL import Image

from qwenimage.pipelines.sizes import ASPECT_PRESETS, DEFAULT_SIZE
from qwenimage.serve.convert import ModelDefaults
from qwenimage.serve.errors import ServeError
from qwenimage.serve.outputs import encode_image
from qwenimage.serve.protocol import ImageEditRequest
from qwenimage.serve.scheduler import Partial
from qwenimage.serve.serving import Serving
from qwenimage.serve.ui_jobs import RANDOM_SEED, aspect_size, caption, editor_inputs, form_params, run_job

MAX_HISTORY = 48  # results the history gallery keeps (newest first)
STEPS_SLIDER_MAX = 100
CACHE_CHECK_S, CACHE_AGE_S = 3600, 86400  # Gradio's file cache: checked hourly, files older than a day deleted
Captioned = list[tuple[Image.Image | str, str]]  # gallery values: (image or Gradio cache path, caption)
Prepared = tuple[ImageEditRequest, list[Image.Image], Image.Image | None]


def mount_ui(app: FastAPI, path: str = "/ui") -> FastAPI:
    """Mount the UI on an app from `create_app` at `path`. With an API key, the UI asks for it as the password
    (any user name), so the page is no way around the key; uploads obey the server's body limit."""
    serving: Serving = app.state.serving
    key = serving.config.api_key
    auth = None if key is None else (lambda _user, password: hmac.compare_digest(password.encode(), key.encode()))
    return gr.mount_gradio_app(app, build_ui(serving), path=path, auth=auth,
                               auth_message="Log in with any user name and the server's API key as the password."
                               if key else None, max_file_size=serving.config.max_upload_bytes, footer_links=[],
                               run_history=False, ssr_mode=False, mcp_server=False,
                               allowed_paths=[str(serving.store.folder)])


def build_ui(serving: Serving) -> gr.Blocks:
    defaults = serving.worker.defaults
    with gr.Blocks(title=f"qwenimage: {serving.worker.model_id}", analytics_enabled=False,
                   delete_cache=(CACHE_CHECK_S, CACHE_AGE_S)) as blocks:
        gr.Markdown(f"### qwenimage · `{serving.worker.model_id}`")
        with gr.Tabs():
            with gr.Tab("Text to image", id="t2i"):
                t2i_inputs, t2i_run, t2i_stop, t2i_out = _t2i_tab(defaults, serving.config)
            with gr.Tab("Edit", id="edit"):
                edit_inputs, edit_run, edit_stop, edit_out = _edit_tab(defaults, serving.config)
        # The history lives in the page: it is sent with each run and comes back with the new results in
        # front, as paths into Gradio's cache, so old images are neither kept in server memory nor re-encoded.
        history = gr.Gallery(label=f"history (this page, newest first, up to {MAX_HISTORY})", type="filepath",
                             interactive=False, elem_id="history", columns=6, fit_columns=False, height=300,
                             preview=False, object_fit="contain", format="png")

        async def generate(prompt, negative, width, height, steps, cfg, seed, n, previews, past):
            def prepare() -> Prepared:
                return form_params(prompt, negative, width, height, steps, cfg, seed, n, previews), [], None
            async for update in _stream(serving, prepare, past, "generation"):
                yield update

        async def edit(editor, extra, prompt, negative, width, height, strength, focus, steps, cfg, seed, n, previews,
                       past):
            def prepare() -> Prepared:
                editor_value = editor or {}
                images, mask = editor_inputs(editor_value.get("background"), editor_value.get("layers") or [],
                                             [path for path, _ in extra or []], serving.config.max_pixels)
                params = form_params(prompt, negative, width, height, steps, cfg, seed, n, previews, strength,
                                     text_focus=focus and mask is None)
                return params, images, mask
            async for update in _stream(serving, prepare, past, "edit"):
                yield update

        for run, stop, fn, inputs, (results, status) in (
                (t2i_run, t2i_stop, generate, t2i_inputs, t2i_out), (edit_run, edit_stop, edit, edit_inputs, edit_out)):
            event = run.click(fn, inputs + [history], [results, status, history],
                              concurrency_limit=None)  # the scheduler queues and batches, not Gradio
            stop.click(None, cancels=[event])
    blocks.queue(default_concurrency_limit=None, max_size=serving.config.max_queue)
    return blocks


def _t2i_tab(defaults: ModelDefaults, config) -> tuple[list, gr.Button, gr.Button, tuple]:
    width, height = defaults.width or DEFAULT_SIZE[0], defaults.height or DEFAULT_SIZE[1]
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(label="prompt", lines=3, elem_id="t2i-prompt")
            negative = _negative_box(defaults, "t2i")
            aspect = gr.Radio(list(ASPECT_PRESETS), value=None, label="aspect (keeps the pixel count)")
            with gr.Row():
                width_box = gr.Number(value=width, precision=0, step=16, label="width", elem_id="t2i-width")
                height_box = gr.Number(value=height, precision=0, step=16, label="height", elem_id="t2i-height")
            aspect.input(_reshape, [aspect, width_box, height_box], [width_box, height_box])
            sampling = _sampling_controls(defaults, config, "t2i", defaults.true_cfg_scale)
            run, stop = _buttons("Generate", "t2i")
        with gr.Column():
            out = _results("t2i")
    return [prompt, negative, width_box, height_box, *sampling], run, stop, out


def _edit_tab(defaults: ModelDefaults, config) -> tuple[list, gr.Button, gr.Button, tuple]:
    with gr.Row():
        with gr.Column():
            editor = gr.ImageEditor(label="image: paint over what to repaint (inpainting), or paint nothing for an "
                                          "instruction edit", type="pil", image_mode="RGBA",
                                    sources=["upload", "clipboard"], brush=gr.Brush(colors=["#ff2f6d"],
                                                                                      color_mode="fixed"),
                                    format="png", height=420, elem_id="edit-image")
            extra = gr.Gallery(label="more condition images (Edit-Plus models; the output shape follows the last)",
                               type="filepath", interactive=True, file_types=["image"], columns=4, height=160,
                               format="png", elem_id="edit-extra")
            prompt = gr.Textbox(label="instruction", lines=2, elem_id="edit-prompt")
            negative = _negative_box(defaults, "edit")
            with gr.Row():
                width_box = gr.Number(value=0, precision=0, step=16, label="width (0: from the image)",
                                      elem_id="edit-width")
                height_box = gr.Number(value=0, precision=0, step=16, label="height (0: from the image)",
                                       elem_id="edit-height")
            strength = gr.Slider(0, 1, value=1, step=0.05, label="inpainting strength (1: repaint from noise)")
            focus = gr.Checkbox(value=False, label='text focus: rewrite the quoted old text where it is drawn '
                                                   '(\'Change the text "OPEN" to "CLOSED"\'; models that declare '
                                                   'their text geometry)', elem_id="edit-text-focus")
            sampling = _sampling_controls(defaults, config, "edit", defaults.edit_cfg)  # as an API instruction edit
            run, stop = _buttons("Edit", "edit")
        with gr.Column():
            out = _results("edit")
    return [editor, extra, prompt, negative, width_box, height_box, strength, focus, *sampling], run, stop, out


def _negative_box(defaults: ModelDefaults, prefix: str) -> gr.Textbox:
    return gr.Textbox(label="negative prompt (empty: the model's default)", lines=1, elem_id=f"{prefix}-negative",
                      placeholder=defaults.negative_prompt or "none, so true CFG is off")


def _sampling_controls(defaults: ModelDefaults, config, prefix: str, cfg_default: float) -> list:
    with gr.Row():
        steps = gr.Slider(1, max(STEPS_SLIDER_MAX, defaults.num_steps), value=defaults.num_steps, step=1,
                          label="steps", elem_id=f"{prefix}-steps")
        cfg = gr.Slider(1, max(10.0, cfg_default), value=cfg_default, step=0.5,
                        label="CFG scale (with a negative prompt)", elem_id=f"{prefix}-cfg")
    with gr.Row():
        seed = gr.Number(value=RANDOM_SEED, precision=0, label="seed (-1: random)", elem_id=f"{prefix}-seed")
        n = gr.Slider(1, config.max_n, value=1, step=1, label="batch", elem_id=f"{prefix}-batch")
        previews = gr.Slider(0, config.max_partial_images, value=min(2, config.max_partial_images), step=1,
                             label="live previews", elem_id=f"{prefix}-previews")
    return [steps, cfg, seed, n, previews]


def _buttons(label: str, prefix: str) -> tuple[gr.Button, gr.Button]:
    with gr.Row():
        run = gr.Button(label, variant="primary", elem_id=f"{prefix}-run")
        stop = gr.Button("Stop", variant="stop", elem_id=f"{prefix}-stop")
    return run, stop


def _results(prefix: str) -> tuple[gr.Gallery, gr.Markdown]:
    results = gr.Gallery(label="result (live previews while sampling)", columns=2, height=480, object_fit="contain",
                         format="png", elem_id=f"{prefix}-results")
    status = gr.Markdown("", elem_id=f"{prefix}-status")
    return results, status


def _reshape(aspect: str | None, width: float | None, height: float | None):
    if aspect is None:
        return gr.skip(), gr.skip()
    area = (width or 0) * (height or 0)
    return aspect_size(aspect, int(area) if area >= 1 else DEFAULT_SIZE[0] * DEFAULT_SIZE[1])


async def _stream(serving: Serving, prepare: Callable[[], Prepared], past: Captioned | None,
                  kind: str) -> AsyncIterator:
    """(results gallery, status, history gallery) updates: the latest preview of each image while sampling,
    then the images with their captions, which also go to the front of the history."""
    start, previews = time.monotonic(), {}
    try:
        params, images, mask = prepare()
        yield [], "queued", gr.skip()
        async for requests, event in run_job(serving, params, images, mask, kind):
            if isinstance(event, Partial):
                previews[event.index] = event.image
                shown = [(image, f"image {i + 1}: preview {event.partial_index + 1}")
                         for i, image in sorted(previews.items())]
                yield shown, f"sampling: preview {event.partial_index + 1} of {params.partial_images}", gr.skip()
            else:
                results = [(await asyncio.to_thread(_saved, serving, image), caption(r, image))
                           for r, image in zip(requests, event.images)]
                seconds = time.monotonic() - start
                history = (results + (past or []))[:MAX_HISTORY]
                yield results, f"done: {len(results)} image(s) in {seconds:.1f} s", history
    except ServeError as err:
        raise gr.Error(err.message) from None


def _saved(serving: Serving, image: Image.Image) -> str:
    """The image as a PNG file in the server's bounded image store, written once: both galleries then send
    the same file, where handing Gradio the PIL image would re-encode and rewrite it while the browser reads."""
    name = serving.store.put(encode_image(image, "png"), "png")
    return str(serving.store.path(name))
