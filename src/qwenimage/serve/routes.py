"""The HTTP routes: parse, convert, hand over to `Serving`. No engine code lives here."""

from __future__ import annotations

import hmac
import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from PIL import Image
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from qwenimage.serve.convert import openai_mask, to_requests
from qwenimage.serve.errors import ServeError, invalid
from qwenimage.serve.metrics import CONTENT_TYPE_LATEST
from qwenimage.serve.outputs import MEDIA_TYPES
from qwenimage.serve.protocol import ImageEditRequest, ImageGenerationRequest, Model, ModelList
from qwenimage.serve.serving import Serving
from qwenimage.serve.uploads import decode_image, decode_rgb

MAX_INPUT_IMAGES = 16  # as the OpenAI API allows
FILE_FIELDS = ("image", "image[]", "mask")


def bearer_check(api_key: str | None):
    """A dependency that refuses (401) a request without `Authorization: Bearer <api_key>`."""
    async def check(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise ServeError(401, "invalid or missing API key: send the header 'Authorization: Bearer <key>'",
                             code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
    return check


def build_router(serving: Serving) -> APIRouter:
    config, started = serving.config, int(time.time())
    open_routes = APIRouter()
    router = APIRouter(dependencies=[Depends(bearer_check(config.api_key))])

    @open_routes.get("/health")
    async def health() -> dict:
        return {"status": "ok", "queue_depth": serving.scheduler.depth}

    @router.get("/v1/models")
    async def models() -> JSONResponse:
        listing = ModelList(data=[Model(id=serving.worker.model_id, created=started)])
        return JSONResponse(listing.model_dump())

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(serving.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @router.get("/v1/images/files/{name}", name="image_file")
    async def image_file(name: str) -> FileResponse:
        path = serving.store.path(name)  # only names the store handed out; nothing else reaches the disk
        if path is None or not path.is_file():
            raise ServeError(404, f"no image named {name!r} (url-mode files are kept for the newest "
                                  f"{config.max_stored_files} images only)", code="not_found")
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix.lstrip(".")])

    @router.post("/v1/images/generations")
    async def generations(body: ImageGenerationRequest, request: Request):
        requests = to_requests(body, serving.worker.defaults, config)
        return await serving.respond(request, body, requests, "generation")

    @router.post("/v1/images/edits")
    async def edits(request: Request):
        params, images, mask = await read_edit_form(request, config.max_pixels)
        requests = to_requests(params, serving.worker.defaults, config, images=images, mask=mask)
        return await serving.respond(request, params, requests, "edit")

    combined = APIRouter()
    combined.include_router(open_routes)
    combined.include_router(router)
    return combined


async def read_edit_form(request: Request, max_pixels: int
                         ) -> tuple[ImageEditRequest, list[Image.Image], Image.Image | None]:
    """The multipart body of /v1/images/edits: typed fields, decoded images ('image' or 'image[]'), and the mask
    turned into ours (white = repaint). Every problem is a 400 naming the field."""
    async with request.form(max_files=MAX_INPUT_IMAGES + 1, max_fields=64) as form:
        uploads = [f for key in ("image", "image[]") for f in form.getlist(key)]
        if not uploads or not all(isinstance(f, UploadFile) for f in uploads):
            raise invalid("image is required: one file as 'image', or several as 'image[]'", "image", "missing")
        if len(uploads) > MAX_INPUT_IMAGES:
            raise invalid(f"at most {MAX_INPUT_IMAGES} images, got {len(uploads)}", "image")
        mask = form.get("mask")
        if mask is not None and not isinstance(mask, UploadFile):
            raise invalid("mask must be a file", "mask")
        try:
            params = ImageEditRequest.model_validate(
                {key: value for key, value in form.multi_items() if key not in FILE_FIELDS})
        except ValidationError as err:
            first = err.errors()[0]
            param = ".".join(str(p) for p in first["loc"]) or None
            raise invalid(f"{param}: {first['msg']}", param, first["type"]) from err
        images = [decode_rgb(await f.read(), "image", max_pixels) for f in uploads]
        mask_image = openai_mask(decode_image(await mask.read(), "mask", max_pixels)) if mask else None
    return params, images, mask_image
