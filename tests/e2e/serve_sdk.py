"""The images server's SDK suite: the real `openai` SDK against a running server, with the tiny Edit-Plus model
(so one server does text-to-image, multi-image edits and inpainting).

Each test module that runs it imports the tests and fixtures from here and provides a module-scoped `server`
fixture (the base URL of a server started with `server_config`): test_serve_openai.py runs it on loopback
uvicorn, test_serve_ray.py on two Ray Serve replicas."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import openai
import pytest
from PIL import Image

from qwenimage.serve import ServeConfig

KEY = "test-key"
FAST = {"num_inference_steps": 2}  # every request: 2 steps


@pytest.fixture(scope="module")
def edit_plus_dir(tiny_pipeline_dir, tmp_path_factory):
    """The tiny edit folder declared as Edit-Plus (same weights), which takes several condition images."""
    folder = tmp_path_factory.mktemp("serve") / "tiny_edit_plus"
    shutil.copytree(tiny_pipeline_dir, folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "QwenImageEditPlusPipeline"}))
    return folder


def server_config(model_dir, output_dir, **overrides) -> ServeConfig:
    """The config every server under this suite runs with (its limits are what the error tests probe)."""
    return ServeConfig(model=model_dir, api_key=KEY, device="cpu", dtype="fp32", max_batch=8, batch_wait_s=0.1,
                       max_upload_bytes=300_000, max_pixels=512 * 512, output_dir=output_dir, **overrides)


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=60)


def png(size=(32, 32), color=(200, 30, 30), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def decode(b64_json: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64_json)))


def get(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def test_generate_b64_and_url(client):
    result = client.images.generate(prompt="a red fox", n=2, size="48x32", extra_body={**FAST, "seed": 1})
    images = [decode(d.b64_json) for d in result.data]
    assert [i.size for i in images] == [(48, 32)] * 2 and images[0].tobytes() != images[1].tobytes()
    result = client.images.generate(prompt="a red fox", size="32x32", response_format="url", output_format="jpeg",
                                    extra_body=FAST)
    assert Image.open(io.BytesIO(get(result.data[0].url))).format == "JPEG"


def test_edit_with_two_images_and_with_a_mask(client):
    result = client.images.edit(image=[("a.png", png(), "image/png"), ("b.png", png((48, 32)), "image/png")],
                                prompt="put them together", size="32x32", extra_body=FAST)
    assert decode(result.data[0].b64_json).size == (32, 32)
    mask = Image.new("RGBA", (32, 32), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 16, 32))  # transparent left half: repaint it
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    source = png(color=(10, 200, 10))
    result = client.images.edit(image=("a.png", source, "image/png"), mask=("m.png", buffer.getvalue(), "image/png"),
                                prompt="a window", extra_body={**FAST, "seed": 2})
    out = np.asarray(decode(result.data[0].b64_json), dtype=np.int16)
    assert out.shape == (32, 32, 3)
    kept, repainted = out[:, 16:], out[:, :16]  # the kept half stays near the source through the VAE round trip
    assert np.abs(kept - np.array([10, 200, 10])).mean() < np.abs(repainted - np.array([10, 200, 10])).mean()


def test_streaming_partial_images(client):
    events = list(client.images.generate(prompt="a fox", size="32x32", stream=True, partial_images=2,
                                         extra_body=FAST))
    assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    assert [e.partial_image_index for e in events[:2]] == [0, 1] and decode(events[-1].b64_json).size == (32, 32)
    mask = ("m.png", png(color=(255, 255, 255)), "image/png")  # no alpha: white repaints (inpaint is cheap here;
    # an instruction edit encodes its condition images at about 1024x1024 whatever their size)
    events = list(client.images.edit(image=("a.png", png(), "image/png"), mask=mask, prompt="x", stream=True,
                                     partial_images=1, extra_body=FAST))
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]


def test_wrong_key_and_bad_requests(server, client):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server}/v1", api_key="wrong", max_retries=0).images.generate(prompt="x")

    def error_of(call) -> tuple[int, dict]:
        with pytest.raises(openai.APIStatusError) as info:
            call()
        body = info.value.response.json()
        assert set(body["error"]) == {"message", "type", "param", "code"}
        return info.value.status_code, body["error"]

    assert error_of(lambda: client.images.generate(prompt="x", size="huge"))[0] == 400
    assert error_of(lambda: client.images.generate(prompt="x", size="40x32", extra_body=FAST))[0] == 400
    assert error_of(lambda: client.images.generate(prompt="x", n=11))[0] == 400
    big = np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)  # incompressible: ~480 KB
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, format="PNG")
    assert error_of(lambda: client.images.edit(image=("big.png", buffer.getvalue(), "image/png"), prompt="x"))[0] == 413
    bomb = png((4000, 4000), color=0, mode="1")  # ~2 KB declaring 16 million pixels
    status, error = error_of(lambda: client.images.edit(image=("bomb.png", bomb, "image/png"), prompt="x"))
    assert status == 400 and "decompression bomb" in error["message"]


def test_concurrent_mixed_sizes_equal_the_same_requests_alone(server, client):
    sizes = ["32x32", "48x32", "32x64", "64x48", "48x48"] * 4  # 20 clients at once
    call = lambda i: client.images.generate(prompt=f"picture {i}", size=sizes[i],  # noqa: E731
                                            extra_body={**FAST, "seed": 100 + i}).data[0].b64_json
    with ThreadPoolExecutor(len(sizes)) as pool:
        together = list(pool.map(call, range(len(sizes))))
    assert [decode(b64_json).size for b64_json in together] == [tuple(map(int, s.split("x"))) for s in sizes]
    alone = [call(i) for i in range(5)]  # one of each size, sent alone: the same image
    for i, (a, b) in enumerate(zip(together, alone)):
        a, b = np.asarray(decode(a), dtype=np.int16), np.asarray(decode(b), dtype=np.int16)
        assert np.abs(a - b).max() <= 2, f"request {i} ({sizes[i]}) differs when batched"
    metrics = get(f"{server}/metrics").decode()
    singles = float(re.search(r'qwenimage_batch_size_bucket\{le="1.0"\} (\S+)', metrics).group(1))
    batches = float(re.search(r"qwenimage_batch_size_count (\S+)", metrics).group(1))
    assert batches > singles, "no pipeline call ran more than one image"
