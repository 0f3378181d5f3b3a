"""The wire format: the OpenAI images API request and response bodies as pydantic models.

Field names and types follow the API so the `openai` SDK works unchanged. Fields the API defines but a
diffusion model cannot honour are typed and accepted with their neutral value only (e.g. background
"transparent" is refused, never silently ignored). Our extensions are optional fields at the end.
Unknown fields are an error that names them, so a typo ("negative_promt") is not lost in silence.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from qwenimage.serve.config import MAX_N

# quality -> sampling steps. "auto" means the model's own default (qwenimage.json, else 50);
# "standard" and "hd" are the older DALL-E names, accepted as medium and high.
QUALITY_STEPS = {"low": 10, "medium": 25, "high": 50}
QUALITY_ALIASES = {"standard": "medium", "hd": "high"}
Quality = Literal["low", "medium", "high", "auto", "standard", "hd"]
OutputFormat = Literal["png", "jpeg", "webp"]


class ImageParams(BaseModel):
    """Fields shared by generations (JSON) and edits (multipart form)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1)
    model: Optional[str] = None  # one model per server: any name is accepted and the served model answers
    n: Optional[int] = Field(default=1, ge=1, le=MAX_N)
    size: Optional[str] = "auto"  # "WxH" or "auto"
    quality: Optional[Quality] = "auto"
    response_format: Optional[Literal["b64_json", "url"]] = "b64_json"
    output_format: Optional[OutputFormat] = "png"
    output_compression: Optional[int] = Field(default=None, ge=0, le=100)  # jpeg/webp quality
    background: Optional[Literal["auto", "opaque"]] = "auto"
    stream: Optional[bool] = False
    partial_images: Optional[int] = Field(default=0, ge=0, le=3)
    user: Optional[str] = None
    safety_identifier: Optional[str] = None
    # qwenimage extensions
    negative_prompt: Optional[str] = None
    seed: Optional[int] = Field(default=None, ge=0, lt=2**64)  # image i of n gets seed + i
    num_inference_steps: Optional[int] = Field(default=None, ge=1)  # overrides quality
    true_cfg_scale: Optional[float] = None


class ImageGenerationRequest(ImageParams):
    moderation: Optional[Literal["low", "auto"]] = None
    style: Optional[Literal["vivid", "natural"]] = None


class ImageEditRequest(ImageParams):
    """The form fields of /v1/images/edits besides the files (image / image[] and mask)."""

    input_fidelity: Optional[Literal["high", "low"]] = None
    strength: Optional[float] = Field(default=None, ge=0, le=1)  # extension: inpaint strength (default 1)
    # extensions for instruction edits (as `qwenimage edit`): the input's own pixels kept where the edit's latents
    # differ from its latents by less than this; a quoted text rewritten where it is drawn, on the model's canvas
    keep_unedited: Optional[float] = Field(default=None, gt=0)
    text_focus: Optional[bool] = False


class ImageData(BaseModel):
    b64_json: Optional[str] = None
    url: Optional[str] = None
    revised_prompt: Optional[str] = None


class ImagesResponse(BaseModel):
    created: int
    data: list[ImageData]
    background: Optional[str] = "opaque"
    output_format: OutputFormat = "png"
    quality: Optional[str] = None
    size: Optional[str] = None


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "qwenimage"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


def event_names(kind: Literal["generation", "edit"]) -> tuple[str, str]:
    """(partial event type, completed event type), as the SDK's stream event types name them."""
    prefix = "image_generation" if kind == "generation" else "image_edit"
    return f"{prefix}.partial_image", f"{prefix}.completed"
