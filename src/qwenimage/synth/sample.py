"""What a strategy returns: the image, its exact text with line and word boxes, and a caption quoting it.

Boxes are (x0, y0, x1, y1) pixel bounds in the final image, x1/y1 exclusive. Word boxes: for Latin script a
word is a run of non-space characters; for Chinese every ideograph is its own "word", with adjacent punctuation
attached to it (closing marks to the character before, opening marks to the one after).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

Box = tuple[int, int, int, int]


@dataclass
class TextBox:
    text: str
    box: Box  # x0, y0, x1, y1 in pixels

    def to_json(self) -> dict:
        return {"text": self.text, "box": list(self.box)}


@dataclass
class SynthSample:
    image: Image.Image  # RGB
    text: str  # every rendered text in reading order, lines joined by "\n"
    caption: str  # quotes every entry of `texts` verbatim
    strategy: str  # "pure" | "compositional" | "complex"
    language: str  # "zh" | "en" | "mixed"
    lines: list[TextBox]
    words: list[TextBox]
    fonts: list[str]  # "Family Style" of every font used
    colors: dict[str, str]  # role -> "#rrggbb"
    extra: dict = field(default_factory=dict)  # strategy specifics: medium, scene, template, quads, ...
    texts: list[str] = field(default_factory=list)  # the text units the caption quotes (unwrapped)
    # an edit pair (strategy edit_pairs): `image` is the edited image, `source` the image the instruction edits;
    # stored as key.source.png beside key.png, which the trainer reads as a TI2I record
    source: Image.Image | None = None
    instruction: str | None = None

    @property
    def char_count(self) -> int:
        return sum(not ch.isspace() for ch in self.text)

    def caption_quotes_text(self) -> bool:
        """True when every rendered text unit appears verbatim in the caption (and there is one)."""
        return bool(self.texts) and all(unit in self.caption for unit in self.texts)

    def metadata(self) -> dict:
        """JSON-able description of everything but the image."""
        return {
            "text": self.text,
            "texts": list(self.texts),
            "caption": self.caption,
            "strategy": self.strategy,
            "language": self.language,
            "char_count": self.char_count,
            "width": self.image.width,
            "height": self.image.height,
            "lines": [line.to_json() for line in self.lines],
            "words": [word.to_json() for word in self.words],
            "fonts": list(self.fonts),
            "colors": dict(self.colors),
            "extra": self.extra,
            **({"instruction": self.instruction} if self.instruction is not None else {}),
        }


class Discard(Exception):
    """Raised by a strategy when a sample must be dropped; `reason` is a short key the runner counts."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # survives pickling across worker processes with both fields intact
        return (Discard, (self.reason, self.detail))
