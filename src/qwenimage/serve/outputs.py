"""Result images on the way out: encoding (png / jpeg / webp) and url mode's file store.

The store writes under random names in its own folder and serves by looking the name up in memory, so no
part of a request ever becomes a file-system path."""

from __future__ import annotations

import base64
import io
import re
import secrets
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from PIL import Image

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_NAME = re.compile(r"^[A-Za-z0-9_-]{22}\.(png|jpeg|webp)$")


def encode_image(image: Image.Image, output_format: str, compression: int | None = None) -> bytes:
    """The image as `output_format` bytes; `compression` (0..100, OpenAI's output_compression) is the jpeg /
    webp quality, default 90; png is always lossless."""
    buffer = io.BytesIO()
    if output_format == "png":
        image.save(buffer, format="PNG")
    else:
        image.save(buffer, format=output_format.upper(), quality=90 if compression is None else compression)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class ImageStore:
    """Files for url mode: `put` returns a fresh random name; `path` resolves only names it handed out, or, when
    the folder is `shared` with other servers (Ray Serve replicas), any well-formed name present in it.
    Keeps the newest `max_files` of its own; older ones are deleted."""

    def __init__(self, folder: Path | None, max_files: int, shared: bool = False):
        self.folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="qwenimage-serve-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_files, self.shared = max_files, shared
        self._files: OrderedDict[str, Path] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, data: bytes, output_format: str) -> str:
        name = f"{secrets.token_urlsafe(16)}.{output_format}"  # 16 random bytes -> 22 url-safe characters
        path = self.folder / name
        path.write_bytes(data)
        with self._lock:
            self._files[name] = path
            while len(self._files) > self.max_files:
                _, old = self._files.popitem(last=False)
                old.unlink(missing_ok=True)
        return name

    def path(self, name: str) -> Path | None:
        if not _NAME.match(name):
            return None
        with self._lock:
            path = self._files.get(name)
        if path is None and self.shared:  # written by another replica; the name pattern admits no other path
            path = self.folder / name
        return path
