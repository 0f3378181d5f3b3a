"""Condition encoder: Qwen2.5-VL (via transformers) turns prompts and condition images into the MMDiT's text stream."""

from qwenimage.text.embeddings import PromptEmbeddings
from qwenimage.text.encoder import EDIT_STYLES, ConditionEncoder, EditStyle
from qwenimage.text.errors import ImageError, PromptError, TemplateError
from qwenimage.images import EDIT_AREA, EDIT_PLUS_VL_AREA, condition_size, load_image, resize_to_area, to_rgb
from qwenimage.text.templates import EDIT_PLUS_TEMPLATE, EDIT_TEMPLATE, T2I_TEMPLATE, PromptTemplate, drop_count

__all__ = [
    "ConditionEncoder", "EditStyle", "EDIT_STYLES", "PromptEmbeddings",
    "PromptError", "ImageError", "TemplateError",
    "EDIT_AREA", "EDIT_PLUS_VL_AREA", "condition_size", "resize_to_area", "to_rgb", "load_image",
    "PromptTemplate", "T2I_TEMPLATE", "EDIT_TEMPLATE", "EDIT_PLUS_TEMPLATE", "drop_count",
]
