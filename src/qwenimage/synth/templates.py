"""Complex-rendering templates: layouts in JSON (synth/data/templates/*.json, plus a user folder).

A template is a canvas in relative coordinates (0..1 of width and height) with elements drawn in order:

    {"name": "slide_title_bullets",
     "description": {"en": "a presentation slide with a {primary} title bar", "zh": "一张带{primary}标题栏的幻灯片"},
     "elements": [
       {"type": "rect", "box": [0, 0, 1, 1], "fill": "background"},
       {"type": "rect", "box": [0, 0, 1, 0.2], "fill": "primary", "radius": 0.02},
       {"type": "text", "slot": "title", "kind": "title", "box": [0.06, 0.04, 0.94, 0.16], "on": "primary",
        "color": "on_primary", "style": "bold", "size": [0.05, 0.09], "align": "left", "valign": "middle",
        "max_lines": 1, "place": {"en": "the title at the top", "zh": "顶部的标题"}}]}

Element types: rect (fill, optional radius, outline), ellipse (fill), line (fill, width), photo (a scene
crop), text (a slot). `description` may name theme colours as {primary}, {accent}, {background}.
Loading validates everything and raises TemplateError naming the file and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

FILL_ROLES = ("background", "surface", "primary", "accent", "muted", "text", "on_primary", "on_accent")
TEXT_KINDS = ("title", "subtitle", "heading", "body", "bullet", "label", "button", "price", "name", "date", "time",
              "phone", "email", "url", "number", "tag", "quote", "item")
FONT_STYLES = ("any", "sans", "serif", "bold", "handwriting")
ELEMENT_TYPES = ("rect", "ellipse", "line", "photo", "text")


class TemplateError(ValueError):
    """A template file that does not follow the schema; the message names the file and the field."""


@dataclass(frozen=True)
class Shape:
    type: str  # rect | ellipse | line | photo
    box: tuple[float, float, float, float]
    fill: str = "surface"
    radius: float = 0.0  # corner radius, share of the canvas' short side
    outline: str | None = None
    width: float = 0.004  # line / outline width, share of the short side


@dataclass(frozen=True)
class TextSlot:
    slot: str
    kind: str
    box: tuple[float, float, float, float]
    color: str
    on: str  # the fill under the text: contrast is checked against it
    style: str = "any"
    size: tuple[float, float] = (0.04, 0.08)  # font size range, share of the canvas' short side
    align: str = "left"
    valign: str = "top"
    max_lines: int = 1
    place_en: str = ""
    place_zh: str = ""


@dataclass(frozen=True)
class Template:
    name: str
    description_en: str
    description_zh: str
    elements: tuple[Shape | TextSlot, ...]
    source: str

    @property
    def slots(self) -> list[TextSlot]:
        return [e for e in self.elements if isinstance(e, TextSlot)]


def _need(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise TemplateError(f"{where}: {message}")


def _box(value, where: str) -> tuple[float, float, float, float]:
    ok = isinstance(value, list) and len(value) == 4 and all(isinstance(v, (int, float)) for v in value)
    _need(ok, where, f"expected [x0, y0, x1, y1] numbers, got {value!r}")
    x0, y0, x1, y1 = value
    _need(0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, where, f"need 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1: {value}")
    return (float(x0), float(y0), float(x1), float(y1))


def _choice(value, options, where: str) -> str:
    _need(value in options, where, f"{value!r} is not one of {list(options)}")
    return value


def _pair(value, where: str) -> tuple[str, str]:
    ok = isinstance(value, dict) and isinstance(value.get("en"), str) and isinstance(value.get("zh"), str)
    _need(ok, where, f'expected {{"en": "...", "zh": "..."}}, got {value!r}')
    return value["en"], value["zh"]


def _shape(item: dict, where: str) -> Shape:
    fill = _choice(item.get("fill", "surface"), FILL_ROLES, f"{where}.fill")
    outline = item.get("outline")
    if outline is not None:
        _choice(outline, FILL_ROLES, f"{where}.outline")
    for key in ("radius", "width"):
        _need(isinstance(item.get(key, 0.0), (int, float)), f"{where}.{key}", "expected a number")
    return Shape(item["type"], _box(item.get("box"), f"{where}.box"), fill, float(item.get("radius", 0.0)), outline,
                 float(item.get("width", 0.004)))


def _text_slot(item: dict, where: str) -> TextSlot:
    _need(isinstance(item.get("slot"), str) and item["slot"], f"{where}.slot", "expected a non-empty name")
    size = item.get("size", [0.04, 0.08])
    ok = isinstance(size, list) and len(size) == 2 and all(isinstance(v, (int, float)) for v in size)
    _need(ok and 0 < size[0] <= size[1] < 1, f"{where}.size",
          f"expected [min, max] shares of the short side, got {size}")
    max_lines = item.get("max_lines", 1)
    _need(isinstance(max_lines, int) and max_lines >= 1, f"{where}.max_lines", "expected an integer >= 1")
    place = _pair(item.get("place"), f"{where}.place")
    return TextSlot(item["slot"], _choice(item.get("kind"), TEXT_KINDS, f"{where}.kind"),
                    _box(item.get("box"), f"{where}.box"),
                    _choice(item.get("color", "text"), FILL_ROLES, f"{where}.color"),
                    _choice(item.get("on", "background"), FILL_ROLES, f"{where}.on"),
                    _choice(item.get("style", "any"), FONT_STYLES, f"{where}.style"),
                    (float(size[0]), float(size[1])),
                    _choice(item.get("align", "left"), ("left", "center", "right"), f"{where}.align"),
                    _choice(item.get("valign", "top"), ("top", "middle", "bottom"), f"{where}.valign"),
                    max_lines, *place)


def parse_template(data, source: str) -> Template:
    _need(isinstance(data, dict), source, "expected a JSON object")
    _need(isinstance(data.get("name"), str) and data["name"], f"{source}: name", "expected a non-empty string")
    description = _pair(data.get("description"), f"{source}: description")
    items = data.get("elements")
    _need(isinstance(items, list) and items, f"{source}: elements", "expected a non-empty list")
    elements = []
    for index, item in enumerate(items):
        where = f"{source}: elements[{index}]"
        _need(isinstance(item, dict), where, "expected an object")
        kind = _choice(item.get("type"), ELEMENT_TYPES, f"{where}.type")
        elements.append(_text_slot(item, where) if kind == "text" else _shape(item, where))
    slots = [e.slot for e in elements if isinstance(e, TextSlot)]
    _need(bool(slots), f"{source}: elements", "no text element")
    _need(len(set(slots)) == len(slots), f"{source}: elements", f"duplicate slot names in {slots}")
    return Template(data["name"], *description, tuple(elements), source)


def load_template(path: str | Path, text: str | None = None) -> Template:
    source = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8") if text is None else text)
    except json.JSONDecodeError as err:
        raise TemplateError(f"{source}: invalid JSON ({err})") from err
    return parse_template(data, source)


def shipped_templates() -> list[Template]:
    folder = resources.files("qwenimage.synth").joinpath("data").joinpath("templates")
    entries = sorted((e for e in folder.iterdir() if e.name.endswith(".json")), key=lambda e: e.name)
    return [load_template(f"templates/{e.name}", e.read_text(encoding="utf-8")) for e in entries]


def load_templates(user_dir: str | None = None) -> list[Template]:
    """The shipped templates, then those of `user_dir` (*.json, sorted by name)."""
    templates = shipped_templates()
    if user_dir:
        templates += [load_template(p) for p in sorted(Path(user_dir).expanduser().glob("*.json"))]
    return templates
