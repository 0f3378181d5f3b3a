"""Caption templates, English and Chinese. Every caption quotes its texts verbatim: "..." in English,
“...” in Chinese. The pure-rendering templates follow the report's examples
(`On a <background> background, displaying <color> text "<text>".`).
"""

from __future__ import annotations

import re

import numpy as np

from qwenimage.synth.backgrounds import Background
from qwenimage.synth.colors import NamedColor
from qwenimage.synth.fonts import FontFace

PURE_EN = (
    'On a {bg} background, displaying {color} text "{text}".',
    'The background is {bg_is}, and the {color} {style} text is "{text}".',
    'A {bg} background with the words "{text}" written in {color} {style} letters.',
    'An image of {color} {style} text on a {bg} background that reads "{text}".',
    'Text rendering on a {bg} background: "{text}" in {color} {style} type, {align}.',
)
PURE_ZH = (
    "在{bg}背景上，显示着{color}文字“{text}”。",
    "背景是{bg}，{color}的{style}文字是“{text}”。",
    "{bg}背景上用{color}{style}写着“{text}”。",
    "一张{bg}底色的图片，上面是{color}的{style}文字：“{text}”。",
    "简洁的{bg}背景，{align}排列的{color}{style}文字写着“{text}”。",
)
ALIGN = {"left": ("left-aligned", "左对齐"), "center": ("centered", "居中"), "right": ("right-aligned", "右对齐")}


_ARTICLE = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])")


def fix_articles(caption_part: str) -> str:
    """"a orange sign" -> "an orange sign" (apply to template wording only, never to quoted text)."""
    return _ARTICLE.sub(lambda m: m.group(1) + "n ", caption_part)


def fill(template: str, text: str, **names: str) -> str:
    """Format a caption template; articles are fixed in the wording, the quoted text is left untouched."""
    return fix_articles(template.format(text="\x00", **names)).replace("\x00", text)


def style_words(face: FontFace) -> tuple[str, str]:
    """How a caption names the face's style, in English and Chinese."""
    if "kai" in face.tags:
        return "kai-style calligraphic", "楷体"
    if "handwriting" in face.tags:
        return "handwritten", "手写体"
    if "bold" in face.tags:
        return "bold", "粗体"
    if "serif" in face.tags:
        return "serif", "宋体" if face.cjk else "衬线体"
    return "sans-serif", "黑体" if face.cjk else "无衬线体"


def choose(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def pure_caption(rng: np.random.Generator, language: str, text: str, background: Background,
                 color: NamedColor, face: FontFace, align: str) -> str:
    index = 0 if language == "en" else 1
    template = choose(rng, PURE_EN if language == "en" else PURE_ZH)
    return fill(template, text, bg=(background.name_en, background.name_zh)[index], bg_is=background.noun_en,
                color=(color.en, color.zh)[index], style=style_words(face)[index], align=ALIGN[align][index])


SCENE_EN = (
    '{Medium} {where} reads "{text}".',
    '{Medium} {where}, with "{text}" written on it in {color} {style} letters.',
    'A photo of {medium} {where}; the {color} text on it says "{text}".',
)
SCENE_ZH = (
    "{where}有{medium}，上面写着“{text}”。",
    "{where}放着{medium}，上面用{color}{style}写着“{text}”。",
    "画面中，{where}有{medium}，{color}的文字写着“{text}”。",
)


def scene_caption(rng: np.random.Generator, language: str, text: str, medium: tuple[str, str],
                  where: tuple[str, str], color: NamedColor, face: FontFace) -> str:
    """`medium` and `where` are (English, Chinese) phrases: ("a wooden sign", "一块木牌")."""
    index = 0 if language == "en" else 1
    template = choose(rng, SCENE_EN if language == "en" else SCENE_ZH)
    name = medium[index]
    return fill(template, text, Medium=name[:1].upper() + name[1:], medium=name, where=where[index],
                color=(color.en, color.zh)[index], style=style_words(face)[index])

TEMPLATE_VERBS_EN = ("reads", "says", "shows")
TEMPLATE_VERBS_ZH = ("写着", "显示", "是")


def template_caption(rng: np.random.Generator, language: str, template, theme, filled) -> str:
    """Describe a filled template and quote each slot with its place; `filled` is [(TextSlot, text)]."""
    names = theme.names(language)
    if language == "en":
        description = fix_articles(template.description_en.format(**names))
        parts = [f"{description[:1].upper()}{description[1:]}."]
        for slot, text in filled:
            place = slot.place_en[:1].upper() + slot.place_en[1:]
            parts.append(f'{place} {choose(rng, TEMPLATE_VERBS_EN)} "{text}".')
        return " ".join(parts)
    description = template.description_zh.format(**names)
    quoted = [f"{slot.place_zh}{choose(rng, TEMPLATE_VERBS_ZH)}“{text}”" for slot, text in filled]
    return f"{description}。" + "，".join(quoted) + "。"
