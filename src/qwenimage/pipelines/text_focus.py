"""Edit a quoted text where it is drawn, at the scale the model writes text (`GenerationRequest.text_focus`).

A small model spells at one glyph size on one canvas (qwenimage-mini: 24-px letters on 128x128 signs); a photo
has its words at any size, angle and place. With text_focus, an instruction that quotes the old text and the new
one ('Change the text "OPEN" to "CLOSED"') is carried out in four steps:

  1. locate: OCR finds the line that reads most like the old text: its quadrilateral in the source;
  2. rectify: a homography maps the quadrilateral to a level box of the model's line height whose left edge is
     where the model starts its words, on a canvas of the model's size (pipelines/text_canvas.py);
  3. edit: the canvas (the source resampled, or, for a model trained on plain signs, the old text redrawn in its
     font, black on white) is edited like any picture: the one sampler, in the same batch as other requests;
  4. paste back: where the edit's latents changed (pipelines/keep.py) and over the old text, inside the line's band,
     the edit goes back through the homography (redrawn: its ink, in the line's colour, on the source with the old
     text painted out); every other pixel is the source's own.

A line of several words is edited a word at a time (`line_pieces`). The model's text geometry comes from its
folder's qwenimage.json, "text_focus" (`TextFocus`); a model without it cannot take such requests.

    focus = TextFocus.from_settings(model_settings(folder))
    for canvas_request, plan in focus_request(request, focus, OcrEngine()):   # [] when OCR finds no such text
        ... edit canvas_request: latents z, pixels x, mask m of what changed ...
        image, alpha = plan.paste(x, m, base=image)                          # the source's size
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from PIL import Image

from qwenimage.images import load_image
from qwenimage.pipelines.text_canvas import (MARGIN, flat_backdrop, grown_box, ink_share, line_colors, line_homography,
                                             missing_glyphs, model_font, redrawn, resample, sub_quad, text_removed)

log = logging.getLogger(__name__)

BACKDROPS = ("source", "flat", "redrawn")
# a quoted span in straight, curly or CJK quotes: 'Change the text "OPEN" to "CLOSED"', 把文字“营业中”改为“休”
_QUOTED = re.compile(r'"([^"]+)"|“([^”]+)”|「([^」]+)」')
# Han (with extension A and compatibility ideographs), kana and Hangul: scripts written without spaces
_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def _rgb_tuples(settings: dict) -> dict:
    """qwenimage.json's paper and ink colours (JSON lists) as RGB tuples; the other settings as they are."""
    return {key: tuple(value) if key in ("paper", "ink") and isinstance(value, list) else value
            for key, value in settings.items()}


def quoted_texts(instruction: str) -> tuple[str, str]:
    """(old, new): the first two quoted spans of an instruction; ValueError when it quotes fewer."""
    spans = [next(group for group in match.groups() if group is not None) for match in _QUOTED.finditer(instruction)]
    if len(spans) < 2:
        raise ValueError(f"text_focus needs an instruction that quotes the old text and the new one, as in "
                         f"'Change the text \"OPEN\" to \"CLOSED\"'; got {instruction!r}")
    return spans[0], spans[1]


@dataclass(frozen=True)
class TextFocus:
    """Where and how large a model writes a line of text on its canvas, as OCR boxes measure it."""

    width: int = 128  # the canvas the model edits on
    height: int = 128
    line_height: float = 30.0  # OCR box height of a line the model writes (canvas pixels)
    left: float = 6.0  # OCR box left edge of its lines
    lower_case: bool = False  # the model writes lower case only: the instruction's quoted texts are lowered
    # the canvas: "source" (the picture itself), "flat" (the line's box in the source's pixels, the rest in its
    # background colour: for a model trained on plain signs) or "redrawn" (all in the background colour, the old
    # text drawn again in the model's own `font`, `font_size` and pen, in the text's colour: its training signs)
    backdrop: str = "source"
    font: str | None = None  # "Family Style", e.g. "DejaVu Sans Mono Bold"
    font_size: int = 24
    pen: float = 0.08  # where the model's lines start, a share of the canvas width
    # redrawn: draw in this paper and ink RGB (the model's surest colours, e.g. black on white) instead of the
    # line's own, and give the edit the line's colours back by how far each pixel is from paper towards ink
    paper: tuple[int, int, int] | None = None
    ink: tuple[int, int, int] | None = None
    min_agreement: float = 0.5  # 1 - NED between the old text and the OCR line taken for it
    # a line without spaces (Chinese) is edited this many characters at a time at most (0: the whole line at once)
    max_chars: int = 0
    # the wording the model learnt to edit from, with {old} and {new}: each canvas asks in it (e.g. Chinese texts in
    # 'Change the text "{old}" to "{new}"'); None: the request's own wording with the piece's texts quoted
    instruction: str | None = None
    # the geometry for texts in CJK characters (its own font, size and line), the others inherited from this one:
    # qwenimage.json "text_focus": {..., "cjk": {"font": "Noto Sans CJK SC Bold", "font_size": 40, ...}}
    cjk: TextFocus | None = None

    def __post_init__(self):
        if not (self.width > 0 and self.height > 0 and 0 < self.line_height < self.height
                and 0 <= self.left < self.width / 2 and 0 < self.min_agreement <= 1 and self.backdrop in BACKDROPS
                and self.font_size > 0 and 0 <= self.pen < 1 and self.max_chars >= 0):
            raise ValueError(f"text_focus settings out of range: {self}")
        if self.backdrop == "redrawn" and not self.font:
            raise ValueError("text_focus: the redrawn backdrop needs the model's font")
        if (self.paper is None) != (self.ink is None) or any(
                not (len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c))
                for c in (self.paper, self.ink) if c is not None):
            raise ValueError(f"text_focus: paper and ink go together, each as [r, g, b] in 0..255; got "
                             f"{self.paper!r} and {self.ink!r}")
        if self.instruction is not None and set(re.findall(r"{(\w*)}", self.instruction)) != {"old", "new"}:
            raise ValueError(f"text_focus: instruction needs exactly the slots {{old}} and {{new}}, got "
                             f"{self.instruction!r}")

    @classmethod
    def from_settings(cls, settings: dict) -> TextFocus | None:
        """From a model folder's qwenimage.json ("text_focus"); None when it has none."""
        values = settings.get("text_focus")
        if values is None:
            return None
        known = {f.name for f in fields(cls)}
        if not isinstance(values, dict) or set(values) - known:
            raise ValueError(f"qwenimage.json: text_focus must be an object with keys among {sorted(known)}, "
                             f"got {values!r}")
        values = _rgb_tuples(values)
        cjk = values.pop("cjk", None)
        focus = cls(**values)
        if cjk is None:
            return focus
        if not isinstance(cjk, dict) or set(cjk) - (known - {"cjk"}):
            raise ValueError(f"qwenimage.json: text_focus.cjk must be an object with keys among "
                             f"{sorted(known - {'cjk'})}, got {cjk!r}")
        return replace(focus, cjk=replace(focus, **_rgb_tuples(cjk)))

    def for_text(self, text: str) -> TextFocus:
        """The geometry to edit `text` with: the CJK one when the text has CJK characters and the model has one."""
        return self.cjk if self.cjk is not None and _CJK.search(text) else self


@dataclass
class FocusPlan:
    """One focused edit: the canvas cut from the source (or drawn for it) and the homography between them."""

    source: Image.Image
    canvas: Image.Image
    to_source: np.ndarray  # [3, 3] canvas pixels -> source pixels
    band: tuple[int, int]  # canvas rows (top, bottom) of the old line, with half a line above and below
    found: str  # what OCR read where the old text is
    # canvas pixels (x0, y0, x1, y1) that are not the source's (the old text redrawn or its backdrop): always taken
    # from the edit, whether it changed them or not
    replaced: tuple[int, int, int, int] | None = None
    # (paper, ink, background, text colour) RGB: the canvas was drawn in paper and ink, the line is in the others
    recolor: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
    first_column: int = 0  # canvas columns left of this come back from no edit (a later word of a rewritten line)
    # canvas columns from this on come back from no edit either (None: none such): characters of a line without
    # spaces that the piece leaves as they are stand right beside its own
    last_column: int | None = None
    # recolor: the source [H, W, 3] with the old line's text painted out, the background the new ink goes on
    # (instead of the line's one background colour)
    clean: np.ndarray | None = None

    def paste(self, edit: torch.Tensor, mask: torch.Tensor,
              base: Image.Image | None = None) -> tuple[Image.Image, np.ndarray]:
        """`base` (default: the source) with the canvas edit [3, h, w] (in [-1, 1]) blended in where `mask` [h, w]
        says, inside the line's band, warped back to the source; and the blend weight [H, W] of the edit."""
        import cv2

        top, bottom = self.band
        area = torch.zeros_like(mask)
        area[top:bottom, self.first_column:self.last_column] = 1
        mask = mask.clone()
        if self.replaced is not None:
            x0, y0, x1, y1 = self.replaced
            mask[y0:y1, x0:x1] = 1
        weight = (mask * area).numpy().astype(np.float32)                               # [h, w]
        pixels = ((edit.float().clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).numpy()    # [h, w, 3]
        size = self.source.size
        if self.recolor is None:
            warped = cv2.warpPerspective(pixels, self.to_source, size, flags=cv2.INTER_LINEAR)
        else:  # the ink's share per pixel, back in the source, on the text-free source (or the line's colour)
            paper, ink, background, text = self.recolor
            share = cv2.warpPerspective(ink_share(pixels, paper, ink), self.to_source, size,
                                        flags=cv2.INTER_LINEAR)[..., None]                # [H, W, 1]
            under_ink = self.clean if self.clean is not None else background.astype(np.float32)
            warped = under_ink * (1 - share) + text.astype(np.float32) * share
        alpha = cv2.warpPerspective(weight, self.to_source, size, flags=cv2.INTER_LINEAR)              # [H, W]
        under = np.asarray(base if base is not None else self.source, dtype=np.float32)
        blended = under * (1 - alpha[..., None]) + warped * alpha[..., None]
        return Image.fromarray(np.clip(blended + 0.5, 0, 255).astype(np.uint8)), alpha


@dataclass(frozen=True)
class Piece:
    """One word-sized edit of a line: the source quadrilateral that frames it, the old text the canvas shows (the
    source's, or drawn), the new text, and how far right of the frame's start (canvas pixels) it is written."""

    quad: np.ndarray  # [4, 2], clockwise from top-left
    old: str
    new: str
    shift: float = 0.0
    frame: str | None = None  # redrawn: the text whose drawn width the quadrilateral's width maps to (default old)


def focus_request(request, focus: TextFocus, ocr) -> list[tuple[object, FocusPlan]]:
    """The request as edits on the model's canvas around the old text, each with its plan, pasted in this order;
    [] when OCR finds no line reading like the old text (the edit then runs on the whole picture, as without
    text_focus). One edit, unless the texts have several words: then only the words that change are edited (same
    number of words), or, with a redrawn backdrop, the new line is written a word at a time from the old line's
    start (each later word over a stand-in of the old text's letters, so the model always replaces a word)."""
    old, new = quoted_texts(request.prompt)
    focus = focus.for_text(old + new)
    source = load_image(request.images[-1])
    lines = ocr.read(source).lines
    from qwenimage.ocr import text_agreement

    def likeness(line) -> float:  # a line that holds the old text among other words is as good as the text alone
        return 1.0 if old.lower() in line.text.lower() else text_agreement(old, line.text)

    best = max(lines, key=likeness, default=None)
    if best is None or likeness(best) < focus.min_agreement:
        log.warning("text_focus: OCR found no line reading like %r (it read %s); editing the whole picture", old,
                    [line.text for line in lines])
        return []
    quad = np.asarray(best.box, dtype=np.float32)
    start = best.text.lower().find(old.lower())
    if start >= 0 and len(old) < len(best.text):  # the old text's share of the line
        quad = sub_quad(quad, start / len(best.text), (start + len(old)) / len(best.text))
    if focus.lower_case:
        old, new = old.lower(), new.lower()
    missing = missing_glyphs(focus, old + new) if focus.backdrop == "redrawn" else ""
    if missing:  # it cannot be drawn on the model's sign: the line's own pixels on a flat backdrop instead
        log.warning("text_focus: the model's font %s has no glyphs for %r, so the old text is not redrawn; the "
                    "model may not write such text", focus.font, missing)
        focus = replace(focus, backdrop="flat", paper=None, ink=None)
    # the line's colours, from the whole old line on its canvas
    line_frame, line_box = line_homography(quad, focus)  # (source-shaped: the colours need no redrawn width)
    colours = line_colors(resample(source, line_frame, (focus.width, focus.height)), line_box)
    clean = text_removed(source, quad, *colours) if focus.backdrop == "redrawn" and focus.paper else None
    seed = request.seed if request.seed is not None else int(torch.seed())
    request.seed = seed
    out = []
    for index, piece in enumerate(line_pieces(old, new, quad, focus)):
        canvas_request, plan = _piece_request(request, source, piece, focus, colours, clean, best.text)
        out.append((replace(canvas_request, seed=(seed + index) % 2**64), plan))
    return out


def line_pieces(old: str, new: str, quad: np.ndarray, focus: TextFocus) -> list[Piece]:
    """The word-sized edits that turn the line `old` (at `quad`) into `new`."""
    if focus.max_chars and " " not in old + new:
        return character_pieces(old, new, quad, focus)
    old_words, new_words = old.split(), new.split()
    if len(old_words) == len(new_words) > 1:  # edit only the words that change, each at its share of the line
        spans = [match.span() for match in re.finditer(r"\S+", old)]
        pieces = [Piece(sub_quad(quad, start / len(old), end / len(old)), o, n)
                  for (start, end), o, n in zip(spans, old_words, new_words) if o != n]
        if pieces:
            return pieces
    if len(new_words) > 1 and focus.backdrop == "redrawn":  # a word at a time at the model's pitch
        font = model_font(focus)
        letters = "".join(old_words)
        pieces = []
        for index, word in enumerate(new_words):
            shift = font.getlength(" ".join(new_words[:index]) + " ") if index else 0.0
            pieces.append(Piece(quad, letters if index == 0 else _stand_in(letters, word), word, shift, letters))
        return pieces
    return [Piece(quad, "".join(old_words) if focus.backdrop == "redrawn" else old, new)]


def character_pieces(old: str, new: str, quad: np.ndarray, focus: TextFocus) -> list[Piece]:
    """The edits of a line written without spaces, at most `focus.max_chars` characters each: with as many characters
    old and new, the runs of characters that change (each at its characters' share of the line); otherwise the
    line in as many pieces as the longer text needs, old and new cut alike. A piece's frame is its characters' own
    part of the OCR box, inside the box's end margins (OCR pads a line by `pen * width - left` canvas pixels at each
    end, that share of its height), which the canvas maps onto the model's drawn characters."""
    size = focus.max_chars
    if len(old) == len(new):
        changed = [i for i, (o, n) in enumerate(zip(old, new)) if o != n]
        runs = []  # [start, end) of consecutive changed characters, cut into pieces of at most `size`
        for i in changed:
            if runs and runs[-1][1] == i and runs[-1][1] - runs[-1][0] < size:
                runs[-1][1] = i + 1
            else:
                runs.append([i, i + 1])
        spans = [((a, b), (a, b)) for a, b in runs] or [((0, len(old)), (0, len(new)))]
    else:
        count = -(-max(len(old), len(new)) // size)
        if count > min(len(old), len(new)):  # too few characters to cut both alike: one piece
            log.warning("text_focus: %r -> %r cannot be cut into pieces of %d characters; editing the line at once",
                        old, new, size)
            count = 1
        cut = lambda text, k: (round(k * len(text) / count), round((k + 1) * len(text) / count))  # noqa: E731
        spans = [(cut(old, k), cut(new, k)) for k in range(count)]
    height = float(np.linalg.norm(quad[3] - quad[0]) + np.linalg.norm(quad[2] - quad[1])) / 2
    width = float(np.linalg.norm(quad[1] - quad[0]) + np.linalg.norm(quad[2] - quad[3])) / 2
    pad = min(0.45, height * (focus.pen * focus.width - focus.left) / focus.line_height / max(width, 1.0))
    share = lambda i: pad + (1 - 2 * pad) * i / len(old)  # noqa: E731  the line's share where character i starts
    return [Piece(sub_quad(quad, share(a), share(b)), old[a:b], new[c:d])
            for (a, b), (c, d) in spans]


def _stand_in(letters: str, word: str) -> str:
    """A word of `word`'s length made of the old text's letters (not `word` itself): what a later word of a
    rewritten line replaces on its canvas."""
    for offset in range(len(letters)):
        candidate = (letters[offset:] + letters[:offset]) * (len(word) // max(1, len(letters)) + 1)
        if candidate[: len(word)] != word:
            return candidate[: len(word)]
    return "x" * len(word) if word != "x" * len(word) else "o" * len(word)


def _requote(prompt: str, old: str, new: str) -> str:
    """The instruction with its first two quoted texts replaced by `old` and `new` (its wording kept)."""
    matches = list(_QUOTED.finditer(prompt))[:2]
    for match, text in reversed(list(zip(matches, (old, new)))):
        group = next(i for i, g in enumerate(match.groups(), start=1) if g is not None)
        prompt = prompt[: match.start(group)] + text + prompt[match.end(group):]
    return prompt


def _piece_request(request, source: Image.Image, piece: Piece, focus: TextFocus, colours, clean: np.ndarray | None,
                   found: str):
    text_width = model_font(focus).getlength(piece.frame or piece.old) if focus.backdrop == "redrawn" else None
    to_source, box = line_homography(piece.quad, focus, text_width, exact=bool(focus.max_chars))
    if piece.shift:  # canvas x on this piece's canvas is x + shift on the line's
        to_source = to_source @ np.array([[1, 0, piece.shift], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    size, recolor, drawn = (focus.width, focus.height), None, None
    if focus.backdrop == "redrawn":  # drawn from scratch: no source pixels on the canvas
        background, ink = colours
        if focus.paper is not None:
            recolor = (np.array(focus.paper), np.array(focus.ink), background, ink)
            background, ink = recolor[:2]
        canvas, drawn = redrawn(size, box, piece.old, focus, background, ink)
    else:
        canvas = resample(source, to_source, size)
        if focus.backdrop == "flat":
            canvas = flat_backdrop(canvas, box)
    x0, y0, x1, y1 = box
    band = (max(0, int(y0 - (y1 - y0) / 2)), min(focus.height, int(np.ceil(y1 + (y1 - y0) / 2))))
    replaced, first_column = None, 0
    if focus.backdrop != "source":  # the old line's box and, when redrawn, the redrawn text's: all of the old text
        covered = box if drawn is None else (min(box[0], drawn[0]), min(box[1], drawn[1]), max(box[2], drawn[2]),
                                             max(box[3], drawn[3]))
        if piece.shift:  # a later word: only its own stand-in, never the words written before it
            covered = drawn
        replaced = grown_box(covered, MARGIN, canvas.size)
        first_column = replaced[0] if piece.shift else 0
    last_column = None
    if focus.max_chars and focus.backdrop == "redrawn":  # only the piece's own characters' advances, a pixel wider
        pen = focus.pen * focus.width
        font = model_font(focus)
        first_column = max(0, int(pen) - 1)
        widest = max(font.getlength(piece.old), font.getlength(piece.new))
        last_column = min(focus.width, int(np.ceil(pen + widest)) + 1)
    prompt = (focus.instruction.format(old=piece.old, new=piece.new) if focus.instruction
              else _requote(request.prompt, piece.old, piece.new))
    canvas_request = replace(request, prompt=prompt,
                             images=[*request.images[:-1], canvas], width=focus.width, height=focus.height,
                             keep_unedited=None, text_focus=False)
    return canvas_request, FocusPlan(source, canvas, to_source, band, found, replaced, recolor, first_column,
                                     last_column, clean)
