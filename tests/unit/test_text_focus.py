"""text_focus: an edit of a quoted text carried out on the model's own canvas around it (pipelines/text_focus.py):
the instruction's quotes, the model's settings, the geometry between the picture and the canvas, the colours, and
the paste back that leaves every other pixel alone."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from qwenimage.ocr import OcrLine, OcrResult
from qwenimage.pipelines.request import GenerationRequest
from qwenimage.pipelines.text_canvas import ink_share, line_homography, sub_quad, text_removed
from qwenimage.pipelines.text_focus import TextFocus, _requote, focus_request, line_pieces, quoted_texts

FOCUS = TextFocus(width=128, height=128, line_height=30.0, left=6.0)
REDRAWN = TextFocus(width=128, height=128, line_height=30.0, left=6.0, lower_case=True, backdrop="redrawn",
                    font="DejaVu Sans Mono Bold", paper=(255, 255, 255), ink=(0, 0, 0))


def apply(homography: np.ndarray, points) -> np.ndarray:
    points = np.c_[np.asarray(points, dtype=np.float64), np.ones(len(points))] @ homography.T
    return points[:, :2] / points[:, 2:]


@pytest.mark.parametrize("instruction, expected", [
    ('Change the text "OPEN" to "CLOSED"', ("OPEN", "CLOSED")),
    ("Replace “Room 12” with “Room 48” please", ("Room 12", "Room 48")),
    ("把文字“营业中”改为“休息中”", ("营业中", "休息中")),
    ("把「出口」改成「入口」", ("出口", "入口")),
])
def test_the_old_and_new_text_are_the_first_two_quoted_spans(instruction, expected):
    assert quoted_texts(instruction) == expected


def test_an_instruction_without_both_texts_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"quotes the old text and the new one.*'make it say \"CLOSED\"'"):
        quoted_texts('make it say "CLOSED"')
    with pytest.raises(ValueError, match="text_focus applies to edits"):
        GenerationRequest(prompt='Change the text "A" to "B"', text_focus=True).validate()


def test_settings_come_from_qwenimage_json_and_bad_ones_are_named():
    assert TextFocus.from_settings({}) is None
    focus = TextFocus.from_settings({"text_focus": {"line_height": 20, "backdrop": "redrawn", "font": "F",
                                                    "paper": [250, 250, 250], "ink": [0, 0, 0]}})
    assert focus.line_height == 20 and focus.paper == (250, 250, 250)
    with pytest.raises(ValueError, match="keys among"):
        TextFocus.from_settings({"text_focus": {"line_hight": 20}})
    with pytest.raises(ValueError, match="paper and ink go together"):
        TextFocus(paper=(255, 255, 255))
    with pytest.raises(ValueError, match="needs the model's font"):
        TextFocus(backdrop="redrawn")
    with pytest.raises(ValueError, match="out of range"):
        TextFocus(line_height=200)


def test_the_homography_takes_the_canvas_box_onto_the_ocr_quadrilateral():
    """A tilted line in the picture becomes a level box of the model's line height, at its left edge, centred."""
    quad = np.array([[60, 100], [180, 80], [186, 120], [66, 140]], dtype=np.float32)       # tilted, 40 px tall
    to_source, box = line_homography(quad, FOCUS)
    x0, y0, x1, y1 = box
    assert (x0, y1 - y0) == (6.0, pytest.approx(30.0)) and (y0 + y1) / 2 == pytest.approx(64.0)
    corners = apply(to_source, [[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    np.testing.assert_allclose(corners, quad, atol=1e-3)
    long_line = np.array([[0, 0], [400, 0], [400, 20], [0, 20]], dtype=np.float32)         # too long at 30 px
    _, (x0, y0, x1, y1) = line_homography(long_line, FOCUS)
    assert x1 == pytest.approx(128 - 6.0) and y1 - y0 < 30


def test_each_pixels_share_of_ink_is_its_place_between_paper_and_ink():
    pixels = np.array([[[255, 255, 255], [0, 0, 0], [127.5, 127.5, 127.5], [300, 300, 300]]], dtype=np.float32)
    share = ink_share(pixels, np.array([255, 255, 255]), np.array([0, 0, 0]))
    np.testing.assert_allclose(share[0], [0, 1, 0.5, 0], atol=1e-6)                # paper, ink, half, clipped
    coloured = ink_share(np.array([[[20, 40, 120], [240, 220, 60]]], np.float32), np.array([20, 40, 120]),
                         np.array([240, 220, 60]))
    np.testing.assert_allclose(coloured[0], [0, 1], atol=1e-6)


class FakeOcr:
    """Reads one line where the test drew it."""

    def __init__(self, text: str, box):
        self.text, self.box = text, box

    def read(self, image):
        return OcrResult([OcrLine(self.text, self.box, 0.99)])


def sign(size=(256, 192)) -> Image.Image:
    image = Image.new("RGB", size, (30, 90, 40))                                       # a green sign
    ImageDraw.Draw(image).rectangle([70, 70, 170, 110], fill=(250, 250, 250))           # where the "word" is
    return image


def test_the_request_moves_to_the_canvas_and_only_the_band_comes_back():
    source = sign()
    quad = [(70.0, 70.0), (170.0, 70.0), (170.0, 110.0), (70.0, 110.0)]
    request = GenerationRequest(prompt='Change the text "OPEN" to "CLOSED"', images=[source], keep_unedited=0.3,
                                text_focus=True, seed=3)
    [(canvas_request, plan)] = focus_request(request, FOCUS, FakeOcr("OPEN", quad))
    assert canvas_request.images == [plan.canvas] and plan.canvas.size == (128, 128)
    assert (canvas_request.width, canvas_request.height, canvas_request.keep_unedited) == (128, 128, None)
    assert canvas_request.prompt == request.prompt and not canvas_request.text_focus and plan.found == "OPEN"
    assert canvas_request.seed == request.seed == 3
    canvas = np.asarray(plan.canvas).astype(int)
    assert (canvas[64, 40] == [250, 250, 250]).all() and (canvas[5, 5] == [30, 90, 40]).all()
    unchanged, alpha = plan.paste(torch.full((3, 128, 128), -1.0), torch.zeros(128, 128))
    assert np.array_equal(np.asarray(unchanged), np.asarray(source)) and alpha.max() == 0
    pasted, alpha = plan.paste(torch.full((3, 128, 128), -1.0), torch.ones(128, 128))   # a black edit everywhere
    changed = np.asarray(pasted).astype(int) != np.asarray(source).astype(int)
    rows = np.nonzero(changed.any(axis=(1, 2)))[0]
    assert rows.min() >= 70 - 22 and rows.max() <= 110 + 22                          # the line's band, no more
    assert np.asarray(pasted)[90, 120].tolist() == [0, 0, 0] and alpha[90, 120] == 1


def test_a_text_ocr_does_not_find_leaves_the_request_as_it_is():
    request = GenerationRequest(prompt='Change the text "OPEN" to "CLOSED"', images=[sign()], text_focus=True)
    assert focus_request(request, FOCUS, FakeOcr("BAKERY", [(0, 0), (50, 0), (50, 20), (0, 20)])) == []


def test_the_redrawn_canvas_is_the_models_own_sign_and_its_colours_come_back():
    """On a suite scene at 256 px (a photo, another font, a tilt), the canvas is black-on-white lower case in the
    model's font, which OCR reads as the old text; an edit that draws ink comes back in the sign's own colours."""
    from qwenimage.eval.text_edit_suite import TextEditSuiteConfig, build_text_edit_pairs
    from qwenimage.ocr import OcrEngine

    pair = build_text_edit_pairs(TextEditSuiteConfig(n=3, size=256, languages=("en",)))[2]   # TOILETS -> TICKETS
    ocr = OcrEngine()
    request = GenerationRequest(prompt=pair.instruction, images=[pair.source], text_focus=True)
    [(canvas_request, plan)] = focus_request(request, REDRAWN, ocr)
    old, new = quoted_texts(pair.instruction)
    assert canvas_request.prompt == pair.instruction.replace(old, old.lower()).replace(new, new.lower())
    canvas = np.asarray(plan.canvas)
    assert set(map(tuple, canvas.reshape(-1, 3).tolist())) <= {(v, v, v) for v in range(256)}  # greys only
    assert ocr.read(plan.canvas).text == old.lower()
    source = np.asarray(pair.source).astype(int)
    ink = -torch.ones(3, 128, 128)                                                      # all ink, as the model drew it
    pasted, alpha = plan.paste(ink, torch.zeros(128, 128))
    inside = alpha > 0.99
    assert inside.sum() > 500 and (alpha == 0).mean() > 0.5
    assert np.array_equal(np.asarray(pasted)[alpha == 0], source[alpha == 0])
    text_colour = plan.recolor[3].astype(int)
    assert np.abs(np.asarray(pasted)[inside].astype(int) - text_colour).max() <= 2


def test_the_pipeline_samples_on_the_canvas_and_returns_the_source_with_the_band_edited(tiny_pipeline_dir, capsys):
    from qwenimage.cli.main import main
    from qwenimage.pipelines.loading import check_requests, load_pipeline

    source = sign()
    quad = [(70.0, 70.0), (170.0, 70.0), (170.0, 110.0), (70.0, 110.0)]
    request = GenerationRequest(prompt='Change the text "OPEN" to "SHUT"', images=[source], num_steps=2,
                                true_cfg_scale=1.0, seed=5, text_focus=True)
    with pytest.raises(ValueError, match="declares none"):
        check_requests(tiny_pipeline_dir, [request])
    pipe = load_pipeline(tiny_pipeline_dir, dtype=torch.float32)
    pipe.text_focus, pipe._ocr = FOCUS, FakeOcr("OPEN", quad)
    plain = GenerationRequest(prompt="a red fox", width=64, height=64, num_steps=2, true_cfg_scale=1.0, seed=1)
    focused, other = pipe.generate([request, plain])
    assert focused.image.size == source.size and focused.latents.shape[-2:] == (16, 16)   # the 128-px canvas
    assert focused.request is request and focused.seed == 5 and other.image.size == (64, 64)
    changed = (np.asarray(focused.image) != np.asarray(source)).any(axis=2)
    rows = np.nonzero(changed.any(axis=1))[0]
    assert changed.any() and rows.min() >= 70 - 22 and rows.max() <= 110 + 22
    assert focused.kept_fraction == pytest.approx(1 - changed.mean(), abs=0.02)
    code = main(["edit", "--prompt", "p", "--image", "a.png", "--strength", "0.5", "--text-focus"])
    assert code == 2 and "--text-focus applies to instruction edits" in capsys.readouterr().err


def test_a_line_of_several_words_is_edited_a_word_at_a_time():
    """Same number of words: only the words that change, each at its share of the line; otherwise (redrawn) the new
    line a word at a time from the old line's start, later words over a stand-in that is not the new word."""
    quad = np.array([[0, 0], [140, 0], [140, 20], [0, 20]], dtype=np.float32)
    (piece,) = line_pieces("happy holidays", "happy birthday", quad, REDRAWN)
    assert (piece.old, piece.new, piece.shift) == ("holidays", "birthday", 0.0)
    np.testing.assert_allclose(piece.quad, sub_quad(quad, 6 / 14, 1.0))
    np.testing.assert_allclose(sub_quad(quad, 0.5, 1.0), [[70, 0], [140, 0], [140, 20], [70, 20]])
    first, second = line_pieces("rent", "for sale", quad, REDRAWN)
    assert (first.old, first.new, first.shift) == ("rent", "for", 0.0)
    assert second.new == "sale" and len(second.old) == 4 and second.old != "sale" and set(second.old) <= set("rent")
    assert second.shift == pytest.approx(4 * 14, abs=1)  # "for " at the model's 24-px monospaced advance (14 px)
    (whole,) = line_pieces("sold out", "sale", quad, REDRAWN)  # one new word: the whole old line, drawn unspaced
    assert (whole.old, whole.new) == ("soldout", "sale")
    (kept,) = line_pieces("sold out", "sale", quad, FOCUS)  # the source's own pixels: its text as it is
    assert kept.old == "sold out"


def test_requoting_keeps_the_instructions_wording():
    assert _requote('Change the text "GOOD MORNING" to "GOOD NIGHT"', "morning", "night") == \
        'Change the text "morning" to "night"'
    assert _requote("把文字“营业中”改为“休息中”", "中", "息") == "把文字“中”改为“息”"


def test_a_rewritten_line_pastes_its_words_one_after_another():
    source = sign()
    quad = [(70.0, 70.0), (170.0, 70.0), (170.0, 110.0), (70.0, 110.0)]
    request = GenerationRequest(prompt='Change the text "RENT" to "FOR SALE"', images=[source], seed=9,
                                text_focus=True)
    (first_request, first), (second_request, second) = focus_request(request, REDRAWN, FakeOcr("RENT", quad))
    assert first_request.prompt == 'Change the text "rent" to "for"' and first_request.seed == 9
    assert second_request.prompt.endswith('to "sale"') and second_request.seed == 10
    assert second.first_column > 0 and first.first_column == 0
    # the second word's canvas starts where the first word's canvas puts "for " (the same line frame, shifted)
    shift = np.linalg.inv(first.to_source) @ second.to_source
    assert shift[0, 2] == pytest.approx(4 * 14, abs=1) and np.allclose(shift[:2, :2], np.eye(2), atol=1e-6)
    black = torch.full((3, 128, 128), -1.0)
    once, _ = first.paste(black, torch.zeros(128, 128))
    twice, alpha = second.paste(black, torch.zeros(128, 128), base=once)
    assert np.array_equal(np.asarray(twice)[alpha == 0], np.asarray(once)[alpha == 0])


def test_a_text_the_models_font_cannot_draw_is_edited_on_the_lines_own_pixels(caplog):
    """Not redrawn in tofu boxes: the canvas shows the line as it is, on a flat backdrop, and the edit stays in the
    line's band (the mini model writes no Chinese; its damage is bounded to the line)."""
    request = GenerationRequest(prompt="把文字“营业中”改为“休息中”", images=[sign()], text_focus=True)
    quad = [(70.0, 70.0), (170.0, 70.0), (170.0, 110.0), (70.0, 110.0)]
    [(canvas_request, plan)] = focus_request(request, REDRAWN, FakeOcr("营业中", quad))
    assert "has no glyphs for" in caplog.text and "营" in caplog.text
    assert plan.recolor is None and canvas_request.prompt == request.prompt
    canvas = np.asarray(plan.canvas).astype(int)
    assert (canvas[64, 40] == [250, 250, 250]).all() and (canvas[5, 5] == canvas[120, 120]).all()



def test_the_old_text_is_painted_out_under_the_new_ink():
    """The new ink goes on the sign with its old text painted out, not on one flat colour: text pixels take the
    surface's colour, pixels away from the line are untouched."""
    image = Image.new("RGB", (200, 100), (200, 180, 40))
    ImageDraw.Draw(image).text((60, 40), "OPEN", fill=(20, 20, 120))
    quad = np.array([[55, 35], [100, 35], [100, 55], [55, 55]], dtype=np.float32)
    clean = text_removed(image, quad, np.array([200, 180, 40]), np.array([20, 20, 120]))
    before = np.asarray(image).astype(np.float32)
    text = np.linalg.norm(before - [20, 20, 120], axis=2) < 100
    assert text.sum() > 20 and np.abs(clean[text] - [200, 180, 40]).max() < 30
    assert np.array_equal(clean[:20], before[:20]) and np.array_equal(clean[:, 150:], before[:, 150:])
    # a dark frame that runs through the line's box and on beyond it is the sign's, not text: it stays
    ImageDraw.Draw(image).rectangle((10, 57, 190, 59), fill=(20, 20, 120))
    framed = text_removed(image, quad, np.array([200, 180, 40]), np.array([20, 20, 120]))
    assert np.array_equal(framed[57:60], np.asarray(image).astype(np.float32)[57:60])
    assert np.abs(framed[text] - [200, 180, 40]).max() < 30


def test_an_old_text_inside_a_longer_line_is_edited_at_its_share_of_the_line():
    quad = [(0.0, 100.0), (180.0, 100.0), (180.0, 120.0), (0.0, 120.0)]              # "OPEN TODAY" read as one line
    request = GenerationRequest(prompt='Change the text "TODAY" to "NOW"', images=[sign()], text_focus=True)
    [(_, plan)] = focus_request(request, FOCUS, FakeOcr("OPEN TODAY", quad))
    corners = apply(plan.to_source, [[6.0, 64 - 15], [6.0, 64 + 15]])
    assert corners[:, 0] == pytest.approx([90.0, 90.0], abs=0.5)                     # "TODAY" starts at 5/10 of it


CJK_SETTINGS = {"font": "Noto Sans CJK SC Bold", "font_size": 40, "line_height": 60.0, "left": 0.0, "max_chars": 2}


def test_a_cjk_text_takes_the_models_cjk_geometry_and_the_rest_is_inherited():
    settings = {"text_focus": {"line_height": 30, "left": 6, "lower_case": True, "backdrop": "redrawn",
                               "font": "DejaVu Sans Mono Bold", "paper": [255, 255, 255], "ink": [0, 0, 0],
                               "cjk": CJK_SETTINGS}}
    focus = TextFocus.from_settings(settings)
    assert focus.for_text("open") is focus and focus.cjk.for_text("x") is focus.cjk
    cjk = focus.for_text("营业中")
    assert (cjk.font, cjk.font_size, cjk.line_height, cjk.max_chars) == ("Noto Sans CJK SC Bold", 40, 60.0, 2)
    assert (cjk.paper, cjk.ink, cjk.backdrop, cjk.width) == ((255, 255, 255), (0, 0, 0), "redrawn", 128)
    assert focus.for_text("room 12 出口") is cjk and TextFocus().for_text("出口") == TextFocus()
    with pytest.raises(ValueError, match="text_focus.cjk must be an object with keys among"):
        TextFocus.from_settings({"text_focus": {**settings["text_focus"], "cjk": {"fontsize": 40}}})
    with pytest.raises(ValueError, match="out of range"):
        TextFocus.from_settings({"text_focus": {"cjk": {"max_chars": -1}}})
    with pytest.raises(ValueError, match=r"exactly the slots \{old\} and \{new\}"):
        TextFocus(instruction='Write "{new}"')


def test_a_line_without_spaces_is_edited_a_run_of_changed_characters_at_a_time():
    """Same length: only the characters that change, in runs of at most max_chars, each framed by its characters'
    part of the OCR box inside its end margins; else both texts cut alike."""
    cjk = replace(REDRAWN, **CJK_SETTINGS)
    pad = 60 * (0.08 * 128 - 0.0) / 60.0                                 # OCR's end margin: 10.24 px on a 60-px line
    quad = np.array([[0, 0], [4 * 40 + 2 * pad, 0], [4 * 40 + 2 * pad, 60], [0, 60]], dtype=np.float32)
    (piece,) = line_pieces("禁止停车", "禁止吸烟", quad, cjk)
    assert (piece.old, piece.new) == ("停车", "吸烟")
    np.testing.assert_allclose(piece.quad[[0, 2]], [[pad + 80, 0], [pad + 160, 60]], atol=1e-3)
    first, second = line_pieces("谢谢惠顾", "欢迎光临", quad, cjk)
    assert [(p.old, p.new) for p in (first, second)] == [("谢谢", "欢迎"), ("惠顾", "光临")]
    np.testing.assert_allclose(first.quad[[0, 2]], [[pad, 0], [pad + 80, 60]], atol=1e-3)
    assert [(p.old, p.new) for p in line_pieces("售票处", "洗手间", quad, cjk)] == [("售票", "洗手"), ("处", "间")]
    assert [(p.old, p.new) for p in line_pieces("出口处", "入口", quad, cjk)] == [("出口", "入"), ("处", "口")]
    assert [(p.old, p.new) for p in line_pieces("出口", "入", quad, cjk)] == [("出口", "入")]
    assert [(p.old, p.new) for p in line_pieces("一二三四", "五六七", quad, cjk)] == [("一二", "五六"), ("三四", "七")]
    (same,) = line_pieces("出口", "出口", quad, cjk)                      # nothing changes: the whole line
    assert (same.old, same.new) == ("出口", "出口")


def test_a_chinese_sign_is_redrawn_in_the_cjk_font_and_only_changed_characters_are_sent():
    request = GenerationRequest(prompt="把文字“营业中”改为“休息中”", images=[sign()], text_focus=True, seed=3)
    focus = replace(REDRAWN, cjk=replace(REDRAWN, **CJK_SETTINGS))
    quad = [(70.0, 70.0), (190.0, 70.0), (190.0, 110.0), (70.0, 110.0)]
    [(canvas_request, plan)] = focus_request(request, focus, FakeOcr("营业中", quad))
    assert canvas_request.prompt == "把文字“营业”改为“休息”" and plan.recolor is not None
    english = replace(focus, cjk=replace(focus.cjk, instruction='Change the text "{old}" to "{new}"'))
    [(asked, _)] = focus_request(request, english, FakeOcr("营业中", quad))
    assert asked.prompt == 'Change the text "营业" to "休息"'                   # in the wording the model learnt
    canvas = np.asarray(plan.canvas.convert("L"))
    ink_columns = np.flatnonzero((canvas < 128).any(axis=0))
    assert ink_columns.min() == pytest.approx(0.08 * 128, abs=3) and 70 <= ink_columns.max() <= 95  # two 40-px glyphs
    # each drawn character lands on the source's: the pen at the line's first character, two advances on at its third
    pad = 40 * 0.08 * 128 / 60.0                                         # OCR's end margin at this line's height
    advance = (120 - 2 * pad) / 3
    corners = apply(plan.to_source, [[0.08 * 128, 64.0], [0.08 * 128 + 80, 64.0]])
    assert corners[:, 0] == pytest.approx([70 + pad, 70 + pad + 2 * advance], abs=0.5)
    # an edit that changes everything comes back over the first two characters only, never over "中"
    before = np.asarray(plan.source).astype(int)
    pasted, alpha = plan.paste(torch.full((3, 128, 128), -1.0), torch.ones(128, 128))
    third = int(np.ceil(70 + pad + 2 * advance)) + 2
    assert alpha[:, third:].max() == 0 and np.array_equal(np.asarray(pasted).astype(int)[:, third:], before[:, third:])
    assert alpha[90, int(70 + pad + advance)] == pytest.approx(1.0)
