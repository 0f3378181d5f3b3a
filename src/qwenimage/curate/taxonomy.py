"""The category taxonomy of the report (Fig. 9), two levels deep, with English and Chinese keywords.

Nature: everything not clearly People or Design. Design: posters, UIs, slides, art. People: portraits,
sports, human activities. Synthetic: rendered text only (never images of other generators). Keywords map
free text (a captioner's "Image Type"/"Image Style", a classifier label, a caption) to (category,
subcategory), WordNet style: a subcategory is named by its synonyms.
"""

from __future__ import annotations

import re

CATEGORIES = ("Nature", "Design", "People", "Synthetic")
OTHER = "other"

TAXONOMY: dict[str, dict[str, list[str]]] = {
    "Design": {
        "poster": ["poster", "flyer", "banner", "advertisement", "billboard", "海报", "广告", "传单"],
        "ui": ["ui", "user interface", "screenshot", "app screen", "website", "web page", "dashboard", "界面",
               "截图", "网页"],
        "slide": ["slide", "presentation", "ppt", "infographic", "chart", "幻灯片", "演示", "信息图"],
        "painting": ["painting", "oil painting", "watercolor", "ink wash", "drawing", "sketch", "绘画", "油画",
                     "水彩", "国画", "素描"],
        "sculpture": ["sculpture", "statue", "carving", "雕塑", "雕像"],
        "craft": ["craft", "embroidery", "pottery", "ceramic", "calligraphy", "手工", "刺绣", "陶瓷", "书法"],
        "digital_art": ["digital art", "illustration", "cartoon", "anime", "logo", "icon", "graphic design",
                        "typography", "插画", "卡通", "动漫", "标志", "平面设计"],
    },
    "People": {
        "portrait": ["portrait", "selfie", "headshot", "face", "人像", "肖像", "自拍"],
        "sports": ["sports", "athlete", "football", "basketball", "soccer", "tennis", "running", "运动",
                   "体育", "运动员"],
        "activity": ["person", "people", "man", "woman", "child", "crowd", "family", "wedding", "concert",
                     "人物", "人群", "男人", "女人", "孩子"],
    },
    "Nature": {
        "animals": ["animal", "cat", "dog", "bird", "wildlife", "insect", "fish", "horse", "动物", "猫", "狗", "鸟"],
        "plants": ["plant", "flower", "tree", "leaf", "garden", "植物", "花", "树"],
        "food": ["food", "dish", "meal", "coffee", "drink", "fruit", "cake", "食物", "美食", "菜", "咖啡"],
        "landscape": ["landscape", "mountain", "beach", "sea", "ocean", "lake", "forest", "sky", "sunset",
                      "desert", "space", "galaxy", "风景", "山", "海", "湖", "森林", "天空"],
        "cityscape": ["city", "cityscape", "street", "building", "architecture", "skyline", "城市", "街道", "建筑"],
        "indoor": ["indoor", "interior", "room", "kitchen", "office", "室内", "房间"],
        "objects": ["object", "product", "vehicle", "car", "motorcycle", "rocket", "still life", "物体", "产品",
                    "汽车"],
    },
    "Synthetic": {"pure": ["pure"], "compositional": ["compositional"], "complex": ["complex"]},
}
# Which category wins when a text names several: the medium (poster, painting) before the subject.
PRIORITY = ("Design", "People", "Nature")


def _pattern(keyword: str) -> re.Pattern:
    if re.search(r"[\u3400-\u9fff]", keyword):  # CJK: no word boundaries
        return re.compile(re.escape(keyword))
    return re.compile(r"\b" + re.escape(keyword) + r"s?\b", re.IGNORECASE)


_PATTERNS = {category: {sub: [_pattern(k) for k in words] for sub, words in subs.items()}
             for category, subs in TAXONOMY.items()}


def match(text: str, categories: tuple[str, ...] = PRIORITY) -> tuple[str, str] | None:
    """(category, subcategory) of the first keyword match, categories in `categories` order."""
    for category in categories:
        for sub, patterns in _PATTERNS[category].items():
            if any(p.search(text) for p in patterns):
                return category, sub
    return None


def subcategory(category: str, text: str) -> str:
    """The subcategory of `category` that `text` names, or 'other'."""
    found = match(text, (category,)) if category in _PATTERNS else None
    return found[1] if found else OTHER


def canonical_category(name: str) -> str | None:
    """'nature' / 'PEOPLE' -> 'Nature' / 'People'; None if not a category."""
    return next((c for c in CATEGORIES if c.lower() == str(name).strip().lower()), None)
