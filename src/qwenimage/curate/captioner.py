"""The recaptioner: Qwen2.5-VL (transformers, from a local folder) asked for the report's JSON, and the
validation/repair of what it answers.

    {"Caption": "...", "Image Type": "...", "Image Style": "...", "Watermark List": [], "Abnormal Element": "no"}

Models ramble: the parser takes the first JSON object in the answer (code fences, prose around it, single
quotes, trailing commas, Python literals, key spelling and case are repaired) and then checks every field.
An answer that cannot be repaired raises CaptionFormatError; the record keeps its raw caption.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field

import numpy as np

CAPTION_PROMPT = (
    "Describe this image as a JSON object with exactly these keys: \"Caption\", \"Image Type\", \"Image Style\", "
    "\"Watermark List\", \"Abnormal Element\".\n"
    "- Caption: natural prose, no lists or markup; the objects, their attributes and relations, the environment; "
    "quote every visible text verbatim and untranslated; be accurate, do not generalise.\n"
    "- Image Type: e.g. photo, poster, UI screenshot, slide, painting, illustration, portrait, landscape.\n"
    "- Image Style: e.g. realistic, cartoon, minimalist, watercolor.\n"
    "- Watermark List: every watermark or logo overlay text, [] if none.\n"
    "- Abnormal Element: \"yes\" if the image has QR codes, heavy mosaics, broken areas or added borders, "
    "else \"no\".\n"
    "Answer with the JSON object only.")
KEYS = {"caption": "Caption", "imagetype": "Image Type", "imagestyle": "Image Style",
        "watermarklist": "Watermark List", "watermarks": "Watermark List", "abnormalelement": "Abnormal Element"}


class CaptionFormatError(ValueError):
    """The captioner's answer is not (repairable into) the required JSON."""


@dataclass
class CaptionerOutput:
    caption: str
    image_type: str
    image_style: str
    watermarks: list[str] = field(default_factory=list)
    abnormal: bool = False

    def to_json(self) -> dict:
        return {"Caption": self.caption, "Image Type": self.image_type, "Image Style": self.image_style,
                "Watermark List": self.watermarks, "Abnormal Element": "yes" if self.abnormal else "no"}


def parse_captioner_json(answer: str) -> CaptionerOutput:
    """Validate (and repair) a captioner answer; raises CaptionFormatError naming the problem."""
    data = _load_object(_first_object(answer))
    fields = {KEYS.get(re.sub(r"[^a-z]", "", str(k).lower())): v for k, v in data.items()}
    missing = [k for k in ("Caption", "Image Type", "Image Style") if not isinstance(fields.get(k), str)
               or not fields[k].strip()]
    if missing:
        raise CaptionFormatError(f"missing or empty field(s): {', '.join(missing)}")
    return CaptionerOutput(fields["Caption"].strip(), fields["Image Type"].strip(), fields["Image Style"].strip(),
                           _watermarks(fields.get("Watermark List", [])),
                           _yes_no(fields.get("Abnormal Element", "no")))


def _first_object(answer: str) -> str:
    start = answer.find("{")
    if start < 0:
        raise CaptionFormatError("no JSON object in the answer")
    depth, in_string, quote = 0, False, ""
    for i, ch in enumerate(answer[start:], start):
        if in_string:
            in_string = not (ch == quote and answer[i - 1] != "\\")
        elif ch in "\"'":
            in_string, quote = True, ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return answer[start:i + 1]
    raise CaptionFormatError("unterminated JSON object in the answer")


def _load_object(text: str) -> dict:
    cleaned = re.sub(r",\s*([}\]])", r"\1", text)  # trailing commas
    for attempt in (lambda: json.loads(cleaned), lambda: ast.literal_eval(cleaned),
                    lambda: json.loads(re.sub(r"\b(True|False|None)\b",
                                              lambda m: {"True": "true", "False": "false", "None": "null"}[m[0]],
                                              cleaned))):
        try:
            data = attempt()
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if isinstance(data, dict):
            return data
    raise CaptionFormatError("the answer's object is not valid JSON")


def _watermarks(value) -> list[str]:
    if value in (None, "", "none", "None", "[]"):
        return []
    if isinstance(value, str):
        return [part.strip() for part in re.split(r"[,;，；]", value) if part.strip()]
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    raise CaptionFormatError(f"Watermark List is not a list: {value!r}")


def _yes_no(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("yes", "y", "true", "是", "有"):
        return True
    if text in ("no", "n", "false", "否", "无", "none", ""):
        return False
    raise CaptionFormatError(f"Abnormal Element must be yes or no, got {value!r}")


class Captioner:
    """Qwen2.5-VL generation from a local folder (the model folder, or a pipeline folder with
    text_encoder/ + tokenizer/ + processor/)."""

    def __init__(self, model_path: str, max_new_tokens: int = 512, max_pixels: int = 448 * 448,
                 device: str = "cpu", dtype: str = "auto"):
        self.model_path, self.max_new_tokens, self.max_pixels = model_path, max_new_tokens, max_pixels
        self.device, self.dtype = device, dtype
        self._model = self._processor = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_model": None, "_processor": None}

    def answer(self, images: list[np.ndarray]) -> list[str]:
        """The raw generated answers, one per image (greedy decoding)."""
        from qwenimage.curate.captioner_model import generate_answers, load_captioner

        if self._model is None:
            self._model, self._processor = load_captioner(self.model_path, self.device, self.dtype)
        return generate_answers(self._model, self._processor, images, CAPTION_PROMPT, self.max_new_tokens,
                                self.max_pixels)
