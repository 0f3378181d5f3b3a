"""Prompt templates of the evaluation suites; `{text}` is where the quoted text goes.

The English word templates are shared with training: a caption builder can draw its prompts from the same
list, so a model is trained and measured with the same wording.

    en_word_prompt("harbor", 3)                        # template 3 (an index is taken modulo the list)
    en_word_prompt("harbor", np.random.default_rng(0)) # a template drawn with the generator
    quoted_texts('a sign that says "OPEN" and a mug with “茶”')  # ("OPEN", "茶"): what the image must show

No template's own wording contains a word of the held-out list (tests check it), so captions built from them
never show a held-out word outside the quoted text.
"""

from __future__ import annotations

import re

import numpy as np

# a text between straight double quotes or between Chinese curly quotes (the suites' two quoting styles)
_QUOTED = re.compile(r'"([^"]*)"|“([^”]*)”')

EN_WORD_TEMPLATES: tuple[str, ...] = (
    'a shop sign that says "{text}"',
    'the word "{text}" written on a poster',
    'a wooden sign with the word "{text}" carved into it',
    'a neon sign that reads "{text}"',
    'a coffee mug printed with the word "{text}"',
    'a chalkboard with "{text}" written on it in white chalk',
    'a street banner that says "{text}"',
    'a T-shirt with the word "{text}" printed on the front',
    'a sticky note with "{text}" handwritten on it',
    'graffiti on a brick wall that spells "{text}"',
    'a cake decorated with the word "{text}" in icing',
    'a large billboard by the highway showing the word "{text}"',
)

EN_PHRASE_TEMPLATES: tuple[str, ...] = (
    'a shop sign that says "{text}"',
    'a poster with the headline "{text}"',
    'a neon sign that reads "{text}"',
    'a chalkboard menu with "{text}" written on it',
    'a street banner that says "{text}"',
    'a T-shirt printed with the words "{text}"',
    'a hand-painted wooden sign that reads "{text}"',
    'a magazine cover with the title "{text}"',
)

# multi-region: a scene and its places; each place names where one quoted text goes
MULTI_REGION_SCENES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("a concert poster", ("a title at the top", "a subtitle under it", "a date line", "a footer at the bottom",
                          "a small sticker in the corner")),
    ("a storefront", ("a large sign above the door", "a poster in the left pane", "a sticker on the glass",
                      "a chalkboard on the pavement", "a small plaque by the door")),
    ("a desk seen from above", ("a sticky note", "a notebook cover", "a coffee mug", "a name plate",
                                "a printed card")),
    ("a city street at night", ("a neon sign", "a bus stop poster", "a shop awning", "a street banner",
                                "a taxi roof sign")),
    ("a birthday table", ("a cake", "a paper banner", "a gift tag", "a greeting card", "a balloon")),
    ("a classroom wall", ("a chalkboard", "a printed poster", "a pinned note", "a door sign", "a calendar page")),
)

LONG_TEXT_TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {  # language -> (scenario, template)
    "en": (
        ("notice", 'a printed notice pinned to a cork board, with the text: "{text}"'),
        ("slide", 'a presentation slide with a single paragraph that reads: "{text}"'),
        ("page", 'an open page of a printed novel showing the paragraph: "{text}"'),
        ("letter", 'a handwritten letter on cream paper that says: "{text}"'),
        ("poster", 'a minimalist poster with a paragraph of text: "{text}"'),
        ("screen", 'a laptop screen showing a web article with the paragraph: "{text}"'),
        ("plaque", 'a metal museum plaque engraved with: "{text}"'),
        ("menu", 'a restaurant menu card whose description reads: "{text}"'),
    ),
    "zh": (
        ("notice", "公告栏上贴着一张打印的通知，内容是：“{text}”"),
        ("slide", "一张演示文稿幻灯片，正文写着：“{text}”"),
        ("page", "一本翻开的书，书页上印着这段文字：“{text}”"),
        ("letter", "一封写在信纸上的手写信，内容是：“{text}”"),
        ("poster", "一张简约风格的海报，上面有一段文字：“{text}”"),
        ("screen", "笔记本电脑屏幕上显示着一篇网页文章，段落写着：“{text}”"),
        ("plaque", "博物馆里的一块金属铭牌，刻着：“{text}”"),
        ("menu", "餐厅菜单上的一段介绍：“{text}”"),
    ),
}

ZH_CHAR_TEMPLATES: tuple[str, ...] = (
    "一张白色宣纸上用黑色毛笔写着一个大字“{text}”",
    "红色春联上写着一个金色的汉字“{text}”",
    "一块木牌上刻着一个汉字“{text}”",
    "霓虹灯招牌上只有一个字“{text}”",
    "黑板中间用白色粉笔写着一个汉字“{text}”",
    "路边的石碑上刻着一个大字“{text}”",
    "一张海报的正中央印着一个大大的汉字“{text}”",
    "一个白色马克杯上印着汉字“{text}”",
)

ZH_PHRASE_TEMPLATES: tuple[str, ...] = (
    "商店的招牌上写着“{text}”",
    "一张海报，标题是“{text}”",
    "一本书的封面，书名是“{text}”",
    "霓虹灯招牌写着“{text}”",
    "黑板上用粉笔写着“{text}”",
    "街道上挂着一条横幅，写着“{text}”",
    "白色马克杯上印着“{text}”",
    "木制门牌上刻着“{text}”",
)


def pick(options: tuple, rng_or_index: np.random.Generator | int):
    """options[index % len] for an int, a uniformly drawn option for a numpy Generator."""
    if isinstance(rng_or_index, np.random.Generator):
        return options[int(rng_or_index.integers(len(options)))]
    return options[int(rng_or_index) % len(options)]


def en_word_prompt(word: str, rng_or_index: np.random.Generator | int) -> str:
    """A prompt asking for `word` on something: EN_WORD_TEMPLATES[index % 12], or one drawn with `rng`."""
    return pick(EN_WORD_TEMPLATES, rng_or_index).format(text=word)


def multi_region_prompt(scene: str, places: list[str], texts: list[str]) -> str:
    """'a storefront with a large sign above the door that says "A", a sticker on the glass that says "B" and
    ...' (CVTG-2K style: every region names its place and quotes its text)."""
    parts = [f'{place} that says "{text}"' for place, text in zip(places, texts)]
    listed = ", ".join(parts[:-1]) + f" and {parts[-1]}"
    return f"{scene} with {listed}"


def quoted_texts(prompt: str) -> tuple[str, ...]:
    """The texts a prompt quotes, in order (straight or curly double quotes): for every suite prompt, its
    expected texts. Empty quotes are skipped; an unclosed quote quotes nothing."""
    return tuple(text for pair in _QUOTED.findall(prompt) if (text := pair[0] or pair[1]))
