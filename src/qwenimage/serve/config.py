"""`ServeConfig`: every knob of the images server in one validated dataclass (the CLI flags map onto it).

The limits exist because the server takes input from the network: each one bounds a resource a single
request could otherwise exhaust (memory for uploads and decoded pixels, queue slots, GPU time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

MAX_N = 10  # the OpenAI images API's own bound on `n`


@dataclass(frozen=True)
class ServeConfig:
    model: Path | None = None  # diffusers-layout folder; None: the package's default model
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None  # Bearer key required on every route but /health; None: open
    device: str | None = None  # cpu, cuda, cuda:1 ...; None: cuda when available
    dtype: str = "bf16"  # fp32 on CPU regardless (half precision is slow there)
    max_batch: int = 4  # images per pipeline call; 1 turns batching off
    max_queue: int = 64  # waiting requests before new ones get 429
    batch_wait_s: float = 0.01  # how long the worker waits for companions before running a lone request
    max_pixels: int = 40_000_000  # per uploaded image and per output image (width x height)
    max_upload_bytes: int = 64 * 2**20  # whole request body
    max_prompt_chars: int = 8000
    max_n: int = MAX_N
    max_partial_images: int = 3  # as in the OpenAI API
    output_dir: Path | None = None  # url mode's folder; None: a fresh temporary folder
    max_stored_files: int = 1000  # url mode keeps the newest files only
    shared_output_dir: bool = False  # other servers (Ray Serve replicas) write to output_dir too: serve theirs
    model_id: str | None = None  # name in /v1/models; None: the model folder's name
    # how the model is loaded and sampled (the flags of cli/model_args.py, as in `qwenimage generate`)
    revision: str | None = None  # Hub revision when model is a repo id
    quantize: str | None = None  # int8 | int8-dynamic | fp8 (torchao), None: off
    compile: bool = False  # torch.compile the transformer blocks
    scheduler: dict[str, object] = field(default_factory=dict)  # overrides of the model's schedule
    cache_threshold: float | None = None  # step cache for every request (sampling/step_cache.py); None: off

    def __post_init__(self) -> None:
        positive = {"port": self.port, "max_batch": self.max_batch, "max_queue": self.max_queue,
                    "max_pixels": self.max_pixels, "max_upload_bytes": self.max_upload_bytes,
                    "max_prompt_chars": self.max_prompt_chars, "max_stored_files": self.max_stored_files}
        for name, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be in 1..65535, got {self.port}")
        if not 1 <= self.max_n <= MAX_N:
            raise ValueError(f"max_n must be in 1..{MAX_N}, got {self.max_n}")
        if not 0 <= self.max_partial_images <= 3:
            raise ValueError(f"max_partial_images must be in 0..3, got {self.max_partial_images}")
        if not 0 <= self.batch_wait_s <= 10:
            raise ValueError(f"batch_wait_s must be in [0, 10] seconds, got {self.batch_wait_s}")
        if self.shared_output_dir and self.output_dir is None:
            raise ValueError("shared_output_dir needs an output_dir that every server can reach")
        from qwenimage.sampling.schedule import ScheduleConfig, override_schedule
        from qwenimage.sampling.step_cache import check_threshold
        from qwenimage.weights.quantize import QUANTIZE_MODES

        if self.quantize is not None and self.quantize not in QUANTIZE_MODES:
            raise ValueError(f"quantize must be one of {', '.join(QUANTIZE_MODES)} or None, got {self.quantize!r}")
        override_schedule(ScheduleConfig(), self.scheduler)
        check_threshold(self.cache_threshold)
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("api_key is empty; pass a non-empty key or none at all")
