"""Reading untrusted uploads: a body-size limit enforced while bytes arrive, and image decoding that checks
the declared pixel count before any pixel is decoded (a small PNG can declare gigapixels: a
"decompression bomb"). No upload is ever written to disk or reaches a file-system path."""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from qwenimage.images import to_rgb
from qwenimage.serve.errors import ServeError, invalid


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is refused with 413, by its Content-Length up front,
    or (chunked bodies) as soon as the count passes the limit while the route reads it."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _send_error(send, too_large(int(declared), self.max_bytes))
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise too_large(seen, self.max_bytes)
            return message

        return await self.app(scope, limited_receive, send)


def too_large(size: int, limit: int) -> ServeError:
    return ServeError(413, f"request body of {size:,} bytes or more is over the limit of {limit:,} bytes",
                      code="request_too_large")


async def _send_error(send, err: ServeError) -> None:
    import json

    body = json.dumps(err.body()).encode()
    await send({"type": "http.response.start", "status": err.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def decode_image(data: bytes, param: str, max_pixels: int) -> Image.Image:
    """Upload bytes -> an RGB-ready PIL image (RGBA kept for masks); 400 naming `param` for anything that
    is not a readable image or declares more than `max_pixels` pixels."""
    if not data:
        raise invalid(f"{param} is empty", param)
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > max_pixels:  # checked on the header, before decoding a single pixel
            raise invalid(f"{param} declares {width}x{height} = {width * height:,} pixels, more than the limit of "
                          f"{max_pixels:,} (a decompression bomb?)", param, code="image_too_large")
        image.load()
    except Image.DecompressionBombError as err:
        raise invalid(f"{param}: {err}", param, code="image_too_large") from err
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise invalid(f"{param} is not a readable image (png, jpeg or webp): {err}", param,
                      code="invalid_image") from err
    return image


def decode_rgb(data: bytes, param: str, max_pixels: int) -> Image.Image:
    try:
        return to_rgb(decode_image(data, param, max_pixels))
    except ValueError as err:  # ImageError: a mode that cannot become RGB
        raise invalid(f"{param}: {err}", param, code="invalid_image") from err
