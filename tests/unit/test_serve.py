"""The images server without a model: pure conversion, the scheduler, and the app with a fake worker."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from qwenimage.pipelines.request import GenerationRequest
from qwenimage.serve import ServeConfig, create_app
from qwenimage.serve.convert import ModelDefaults, openai_mask, parse_size, steps_for, to_requests
from qwenimage.serve.errors import ServeError
from qwenimage.serve.metrics import ServeMetrics
from qwenimage.serve.protocol import QUALITY_STEPS, ImageEditRequest, ImageGenerationRequest
from qwenimage.serve.scheduler import Done, Job, Scheduler, preview_steps

DEFAULTS = ModelDefaults(num_steps=2, width=32, height=32)


class FakeWorker:
    """Solid images of the requested size whose colour is the seed; records each call's batch size."""

    model_id, defaults = "fake-model", DEFAULTS

    def __init__(self):
        self.batches: list[int] = []
        self.gate, self.entered = threading.Event(), threading.Event()
        self.gate.set()

    def admit(self, request: GenerationRequest) -> None:
        request.validate()
        if request.width is not None and request.width % 16:
            raise ValueError(f"width {request.width} is not a multiple of 16")

    def run(self, requests, *, progress=None, preview=None, wants_preview=None):
        self.entered.set()
        assert self.gate.wait(10)
        self.batches.append(len(requests))
        steps = requests[0].num_steps
        for step in range(1, steps + 1):
            if progress:
                progress(step, steps)
            for i, r in enumerate(requests):
                if preview and wants_preview(i, step, steps):
                    preview(i, step, steps, Image.new("RGB", (8, 8), (step, 0, 0)))
        return [Image.new("RGB", (r.width or 32, r.height or 32), ((r.seed or 0) % 256, 0, 0)) for r in requests]


def png_bytes(size=(32, 32), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def make_client(tmp_path):
    clients = []

    def make(worker=None, **config):
        config.setdefault("output_dir", tmp_path / "files")
        client = TestClient(create_app(ServeConfig(**config), worker or FakeWorker()))
        clients.append(client.__enter__())
        return client
    yield make
    for client in clients:
        client.__exit__(None, None, None)


def assert_openai_error(response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param
    return error


# ---- pure conversion ----------------------------------------------------------------------------------------
def test_parse_size_and_quality_steps():
    assert parse_size("64x48") == (64, 48) and parse_size("auto") is None and parse_size(None) is None
    for bad in ("64", "64x", "ax64", "0x64", "-64x64"):
        with pytest.raises(ServeError, match="size"):
            parse_size(bad)
    params = ImageGenerationRequest(prompt="x", quality="low")
    assert steps_for(params, DEFAULTS) == QUALITY_STEPS["low"]
    assert steps_for(ImageGenerationRequest(prompt="x", quality="hd"), DEFAULTS) == QUALITY_STEPS["high"]
    assert steps_for(ImageGenerationRequest(prompt="x"), DEFAULTS) == 2  # auto: the model's default
    assert steps_for(ImageGenerationRequest(prompt="x", quality="low", num_inference_steps=3), DEFAULTS) == 3


def test_to_requests_seeds_sizes_and_tasks():
    config = ServeConfig()
    requests = to_requests(ImageGenerationRequest(prompt="a", n=3, seed=5, size="64x48"), DEFAULTS, config)
    assert [(r.seed, r.width, r.height, r.num_steps) for r in requests] == [(5, 64, 48, 2), (6, 64, 48, 2),
                                                                             (7, 64, 48, 2)]
    assert to_requests(ImageGenerationRequest(prompt="a"), DEFAULTS, config)[0].width == 32  # auto: model's size
    image = Image.new("RGB", (48, 48))
    edit = to_requests(ImageEditRequest(prompt="e"), DEFAULTS, config, images=[image, image])[0]
    assert edit.task.value == "edit" and edit.width is None  # auto: from the last image
    inpaint = to_requests(ImageEditRequest(prompt="e"), DEFAULTS, config, images=[image], mask=image)[0]
    assert inpaint.task.value == "inpaint" and inpaint.strength == 1.0
    with pytest.raises(ServeError, match="exactly one image"):
        to_requests(ImageEditRequest(prompt="e"), DEFAULTS, config, images=[image, image], mask=image)
    with pytest.raises(ServeError, match="prompt has 11 characters"):
        to_requests(ImageGenerationRequest(prompt="x" * 11), DEFAULTS, ServeConfig(max_prompt_chars=10))


def test_instruction_edits_take_the_models_edit_cfg(tmp_path):
    (tmp_path / "qwenimage.json").write_text(json.dumps({"defaults": {"true_cfg_scale": 4.0},
                                                          "edit_defaults": {"true_cfg_scale": 1.0}}))
    defaults, config, image = ModelDefaults.from_folder(tmp_path), ServeConfig(), Image.new("RGB", (48, 48))
    assert defaults.edit_true_cfg_scale == 1.0
    assert to_requests(ImageEditRequest(prompt="e"), defaults, config, images=[image])[0].true_cfg_scale == 1.0
    assert to_requests(ImageGenerationRequest(prompt="a"), defaults, config)[0].true_cfg_scale == 4.0
    inpaint = to_requests(ImageEditRequest(prompt="e"), defaults, config, images=[image], mask=image)[0]
    assert inpaint.true_cfg_scale == 4.0  # inpainting is text-to-image over a mask: the plain defaults
    asked = to_requests(ImageEditRequest(prompt="e", true_cfg_scale=3.0), defaults, config, images=[image])[0]
    assert asked.true_cfg_scale == 3.0


def test_openai_mask_transparent_means_repaint():
    mask = Image.new("RGBA", (4, 2), (255, 255, 255, 255))
    mask.putpixel((0, 0), (0, 0, 0, 0))
    ours = openai_mask(mask)
    assert ours.getpixel((0, 0)) == (255, 255, 255) and ours.getpixel((1, 0)) == (0, 0, 0)
    assert openai_mask(Image.new("L", (2, 2), 255)).getpixel((0, 0)) == (255, 255, 255)  # no alpha: ours


def test_preview_steps_spread_evenly():
    assert preview_steps(2, 2) == [1, 2]
    assert preview_steps(10, 3) == [3, 5, 8]
    assert preview_steps(1, 3) == [1] and preview_steps(5, 0) == []


def test_config_names_bad_values():
    with pytest.raises(ValueError, match="max_batch must be a positive integer, got 0"):
        ServeConfig(max_batch=0)
    with pytest.raises(ValueError, match="max_n must be in 1..10, got 11"):
        ServeConfig(max_n=11)


def test_config_names_bad_loading_settings():
    with pytest.raises(ValueError, match="quantize must be one of int8, int8-dynamic, fp8 or None, got 'int4'"):
        ServeConfig(quantize="int4")
    with pytest.raises(ValueError, match="unknown scheduler key 'shfit'"):
        ServeConfig(scheduler={"shfit": 3})
    with pytest.raises(ValueError, match="cache_threshold must be a finite number >= 0"):
        ServeConfig(cache_threshold=-1.0)


def test_the_worker_loads_and_samples_as_the_config_says(tiny_t2i_pipeline_dir):
    """The schedule override reaches the loaded pipeline; the server's step cache fills requests that set none
    and leaves a request's own value (0 included: cache off for that one)."""
    from qwenimage.serve.worker import PipelineWorker

    config = ServeConfig(model=tiny_t2i_pipeline_dir, device="cpu", dtype="fp32", scheduler={"shift": "3"},
                         cache_threshold=0.15)
    worker = PipelineWorker.from_config(config)
    assert worker.pipe.schedule.shift == 3.0 and worker.pipe.schedule.use_dynamic_shifting is False
    plain, own = (GenerationRequest(prompt="a cat", width=64, height=64, num_steps=2, cache_threshold=value)
                  for value in (None, 0.0))
    worker.admit(plain)
    worker.admit(own)
    assert plain.cache_threshold == 0.15 and own.cache_threshold == 0.0
    assert len(worker.run([plain, own])) == 2


# ---- scheduler ----------------------------------------------------------------------------------------------
def test_scheduler_batches_compatible_jobs_up_to_max_batch():
    async def main():
        worker = FakeWorker()
        worker.gate.clear()  # hold the worker so every job is waiting when batches are formed
        scheduler = Scheduler(worker.run, ServeMetrics(), max_batch=3, max_queue=10)
        loop = asyncio.get_running_loop()
        jobs = [Job([GenerationRequest("p", num_steps=steps, seed=i)], loop) for i, steps in
                enumerate([2, 2, 3, 2, 2])]
        jobs.append(Job([GenerationRequest("n", num_steps=4, seed=9 + i) for i in range(5)], loop))  # n > max_batch
        blocker = Job([GenerationRequest("b", num_steps=9)], loop)
        scheduler.start()
        scheduler.submit(blocker)
        await asyncio.sleep(0.05)  # the blocker is running (held at the gate); the rest queue up
        for job in jobs:
            scheduler.submit(job)
        worker.gate.set()
        events = [await asyncio.wait_for(job.events.get(), 5) for job in jobs]
        scheduler.stop()
        return worker.batches, events
    batches, events = asyncio.run(main())
    # blocker; three 2-step jobs; the fourth 2-step job; the 3-step job; the n=5 job in calls of 3 and 2
    assert batches == [1, 3, 1, 1, 3, 2]
    assert all(isinstance(e, Done) for e in events) and [len(e.images) for e in events] == [1] * 5 + [5]
    assert [image.getpixel((0, 0))[0] for image in events[-1].images] == [9, 10, 11, 12, 13]


# ---- the app, with a fake worker ----------------------------------------------------------------------------
def test_generation_b64_and_url(make_client):
    client = make_client()
    body = client.post("/v1/images/generations", json={"prompt": "a", "n": 2, "size": "48x32", "seed": 7}).json()
    images = [Image.open(io.BytesIO(base64.b64decode(d["b64_json"]))) for d in body["data"]]
    assert [i.size for i in images] == [(48, 32)] * 2 and [i.getpixel((0, 0))[0] for i in images] == [7, 8]
    url = client.post("/v1/images/generations", json={"prompt": "a", "response_format": "url",
                                                      "output_format": "webp"}).json()["data"][0]["url"]
    fetched = client.get(url)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/webp"
    assert_openai_error(client.get("/v1/images/files/..%2F..%2Fetc%2Fpasswd"), 404)
    assert_openai_error(client.get("/v1/images/files/" + "a" * 22 + ".png"), 404)


def test_bad_values_are_4xx_in_the_openai_shape(make_client):
    client = make_client()
    post = lambda **body: client.post("/v1/images/generations", json={"prompt": "a", **body})  # noqa: E731
    assert_openai_error(post(size="big"), 400, "size")
    assert_openai_error(post(n=11), 400, "n")
    assert_openai_error(post(n=0), 400, "n")
    assert_openai_error(post(size="40x32"), 400)  # the worker's own check: not a multiple of 16
    assert_openai_error(post(negative_promt="x"), 400, "negative_promt")  # unknown fields are named
    assert_openai_error(post(background="transparent"), 400, "background")
    assert_openai_error(client.post("/v1/images/generations", content=b"{not json",
                                    headers={"content-type": "application/json"}), 400)
    assert_openai_error(client.get("/nowhere"), 404)


def test_api_key_on_every_route_but_health(make_client):
    client = make_client(api_key="sekret")
    assert client.get("/health").status_code == 200
    for path in ("/v1/models", "/metrics"):
        assert_openai_error(client.get(path), 401)
        assert_openai_error(client.get(path, headers={"Authorization": "Bearer wrong"}), 401)
    assert_openai_error(client.post("/v1/images/generations", json={"prompt": "a"}), 401)
    models = client.get("/v1/models", headers={"Authorization": "Bearer sekret"}).json()
    assert models["data"][0]["id"] == "fake-model"


def test_upload_limits(make_client):
    client = make_client(max_upload_bytes=50_000, max_pixels=100 * 100)
    edit = lambda files, **data: client.post("/v1/images/edits", files=files, data={"prompt": "e", **data})  # noqa
    assert edit([("image", ("a.png", png_bytes(), "image/png"))]).status_code == 200
    big = b"\0" * 60_000
    assert_openai_error(edit([("image", ("a.png", big, "image/png"))]), 413)
    chunked = (b"\0" * 10_000 for _ in range(6))  # no Content-Length: counted while it arrives
    assert_openai_error(client.post("/v1/images/edits", content=chunked,
                                    headers={"content-type": "multipart/form-data; boundary=x"}), 413)
    bomb = png_bytes((2000, 2000), mode="1")  # a few hundred bytes that declare 4 million pixels
    assert len(bomb) < 50_000
    error = assert_openai_error(edit([("image", ("bomb.png", bomb, "image/png"))]), 400, "image")
    assert "decompression bomb" in error["message"]
    assert_openai_error(edit([("image", ("a.txt", b"not an image", "text/plain"))]), 400, "image")
    assert_openai_error(client.post("/v1/images/edits", data={"prompt": "e"}), 400, "image")
    assert_openai_error(edit([("image", ("a.png", png_bytes(), "image/png"))], n="lots"), 400, "n")


def test_full_queue_is_429_with_retry_after(make_client):
    worker = FakeWorker()
    worker.gate.clear()
    client = make_client(worker, max_queue=1, max_batch=1, batch_wait_s=0)
    results = []
    post = lambda: results.append(client.post("/v1/images/generations", json={"prompt": "a"}).status_code)  # noqa
    threads = [threading.Thread(target=post) for _ in range(2)]
    threads[0].start()
    assert worker.entered.wait(10)  # the first request runs, held at the gate
    threads[1].start()
    for _ in range(500):  # the second waits in the queue
        if client.get("/health").json()["queue_depth"] == 1:
            break
        threading.Event().wait(0.01)
    response = client.post("/v1/images/generations", json={"prompt": "a"})
    assert_openai_error(response, 429)
    assert int(response.headers["retry-after"]) >= 1
    worker.gate.set()
    for t in threads:
        t.join(10)
    assert results == [200, 200]
    assert "qwenimage_rejected_requests_total 1.0" in client.get("/metrics").text


def test_stream_sends_partials_then_completed(make_client):
    client = make_client()
    with client.stream("POST", "/v1/images/generations", json={"prompt": "a", "stream": True,
                                                                "partial_images": 2}) as response:
        text = "".join(response.iter_text())
    events = [line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event: ")]
    assert events == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]


def test_cancelled_jobs_leave_the_queue_and_stop_their_batch():
    async def main():
        worker = FakeWorker()
        worker.gate.clear()
        scheduler = Scheduler(worker.run, ServeMetrics(), max_batch=4, max_queue=10)
        loop = asyncio.get_running_loop()
        running, waiting = (Job([GenerationRequest("p", num_steps=n)], loop) for n in (2, 3))
        scheduler.start()
        scheduler.submit(running)
        assert await loop.run_in_executor(None, worker.entered.wait, 5)
        scheduler.submit(waiting)
        scheduler.cancel(waiting)  # still queued: dropped at once
        assert scheduler.depth == 0
        scheduler.cancel(running)  # running alone: the next step's progress call stops the batch
        worker.gate.set()
        await asyncio.sleep(0.2)
        scheduler.stop()
        return worker.batches, running.events.qsize(), waiting.events.qsize()
    assert asyncio.run(main()) == ([1], 0, 0)  # the waiting job never ran; nobody got a result


class FailingWorker(FakeWorker):
    def __init__(self, error: Exception):
        super().__init__()
        self.error = error

    def run(self, requests, **kwargs):
        raise self.error


def test_worker_failures_are_reported_without_tracebacks(make_client):
    client = make_client(FailingWorker(ValueError("cannot read image data")))
    assert "cannot read image data" in assert_openai_error(
        client.post("/v1/images/generations", json={"prompt": "a"}), 400)["message"]
    with client.stream("POST", "/v1/images/generations", json={"prompt": "a", "stream": True}) as response:
        text = "".join(response.iter_text())
    last_event, last_data = text.strip().split("\n")[-2:]
    assert last_event == "event: error" and "cannot read image data" in last_data
    client = make_client(FailingWorker(RuntimeError("CUDA out of memory at /secret/path")))
    error = assert_openai_error(client.post("/v1/images/generations", json={"prompt": "a"}), 500)
    assert "secret" not in error["message"] and error["type"] == "server_error"


def test_edit_stream_uses_the_edit_event_names(make_client):
    client = make_client()
    files = [("image[]", ("a.png", png_bytes(), "image/png")), ("image[]", ("b.png", png_bytes(), "image/png"))]
    with client.stream("POST", "/v1/images/edits", files=files,
                       data={"prompt": "e", "stream": "true", "partial_images": "1"}) as response:
        text = "".join(response.iter_text())
    events = [line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event: ")]
    assert events == ["image_edit.partial_image", "image_edit.completed"]


def test_clients_that_go_away_have_their_work_cancelled(tmp_path):
    import urllib.request

    from qwenimage.serve.loopback import LoopbackServer

    worker = FakeWorker()
    worker.gate.clear()
    app = create_app(ServeConfig(max_batch=1, batch_wait_s=0, output_dir=tmp_path), worker)

    def give_up_after(seconds: float, body: dict) -> None:
        request = urllib.request.Request(f"{server.url}/v1/images/generations", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(OSError):  # the read times out and the connection closes
            urllib.request.urlopen(request, timeout=seconds).read()

    with LoopbackServer(app) as server:
        running = threading.Thread(target=give_up_after, args=(0.5, {"prompt": "a"}))
        running.start()
        assert worker.entered.wait(10)  # the first request runs, held at the gate
        give_up_after(0.5, {"prompt": "b", "stream": True})  # the second waits in the queue, then leaves
        running.join(10)
        metrics = urllib.request.urlopen(f"{server.url}/metrics", timeout=10).read().decode()
        for _ in range(100):  # the server notices within its poll interval
            if "qwenimage_cancelled_requests_total 2.0" in metrics:
                break
            threading.Event().wait(0.05)
            metrics = urllib.request.urlopen(f"{server.url}/metrics", timeout=10).read().decode()
        assert "qwenimage_cancelled_requests_total 2.0" in metrics and "qwenimage_queue_depth 0.0" in metrics
        worker.gate.set()
        threading.Event().wait(0.2)
        assert worker.batches == [1]  # the queued request never ran


def test_serve_command_is_registered():
    from qwenimage.cli.main import build_parser

    args = build_parser().parse_args(["serve", "--model", "m", "--port", "9000", "--api-key", "k", "--max-batch",
                                      "2", "--max-queue", "3", "--max-pixels", "1000", "--device", "cpu"])
    assert (args.command, args.port, args.api_key, args.max_batch, args.max_queue, args.max_pixels) == (
        "serve", 9000, "k", 2, 3, 1000)


def test_instruction_edits_take_keep_unedited_and_text_focus(tmp_path):
    """The edit options of `qwenimage edit` are API extensions of /v1/images/edits; text_focus needs a model that
    declares its text geometry, and neither goes with a mask or without images."""
    from qwenimage.mini.build import MINI_TEXT_FOCUS

    config, image = ServeConfig(), Image.new("RGB", (48, 48))
    params = ImageEditRequest(prompt='Change the text "A" to "B"', keep_unedited=0.3, text_focus=True)
    with pytest.raises(ServeError, match="the served model declares none"):
        to_requests(params, DEFAULTS, config, images=[image])
    (tmp_path / "qwenimage.json").write_text(json.dumps({"text_focus": MINI_TEXT_FOCUS}))
    focused = ModelDefaults.from_folder(tmp_path)
    (request,) = to_requests(params, focused, config, images=[image])
    assert (request.keep_unedited, request.text_focus, request.task.value) == (0.3, True, "edit")
    with pytest.raises(ServeError, match="text_focus applies to instruction edits"):
        to_requests(ImageEditRequest(prompt="e", text_focus=True), focused, config, images=[image], mask=image)
    with pytest.raises(ServeError, match="keep_unedited applies to instruction edits"):
        to_requests(ImageEditRequest(prompt="e", keep_unedited=0.5), focused, config)
    with pytest.raises(ValueError):
        ImageEditRequest(prompt="e", keep_unedited=0)
