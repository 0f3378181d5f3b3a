"""Complex-rendering templates: the shipped ones load and render; broken ones name the file and field."""

import json

import numpy as np
import pytest

from qwenimage.synth import Discard, build_strategy
from qwenimage.synth.templates import TemplateError, load_template, load_templates, shipped_templates

GOOD = {"name": "tiny", "description": {"en": "a card", "zh": "一张卡片"}, "elements": [
    {"type": "rect", "box": [0, 0, 1, 1], "fill": "background"},
    {"type": "text", "slot": "title", "kind": "title", "box": [0.1, 0.1, 0.9, 0.3],
     "place": {"en": "the title", "zh": "标题"}}]}


def test_at_least_ten_templates_ship_and_validate():
    templates = shipped_templates()
    assert len(templates) >= 10
    assert len({t.name for t in templates}) == len(templates)
    assert all(len(t.slots) >= 2 for t in templates)


@pytest.mark.parametrize("path, value, message", [
    (("elements", 1, "box"), [0.5, 0.1, 0.2, 0.3], "elements[1].box"),
    (("elements", 1, "kind"), "headline", "elements[1].kind"),
    (("elements", 0, "fill"), "pink", "elements[0].fill"),
    (("elements", 1, "size"), [0.1, 0.05], "elements[1].size"),
    (("elements", 1, "place"), "the title", "elements[1].place"),
    (("description",), None, "description"),
])
def test_broken_template_names_file_and_field(tmp_path, path, value, message):
    data = json.loads(json.dumps(GOOD))
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    file = tmp_path / "broken.json"
    file.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(TemplateError) as caught:
        load_template(file)
    assert "broken.json" in str(caught.value) and message in str(caught.value)


def test_invalid_json_and_user_folder(tmp_path):
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(TemplateError, match="bad.json: invalid JSON"):
        load_templates(str(tmp_path))
    (tmp_path / "bad.json").write_text(json.dumps(GOOD), encoding="utf-8")
    assert load_templates(str(tmp_path))[-1].name == "tiny"


@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_shipped_template_renders(language):
    strategy = build_strategy("complex")
    for template in shipped_templates():
        strategy._templates = [template]
        rendered = 0
        for seed in range(4):
            try:
                sample = strategy.render(np.random.default_rng(seed), 384, 384, language)
            except Discard:
                continue
            assert sample.extra["template"] == template.name and sample.caption_quotes_text()
            rendered += 1
        assert rendered >= 3, f"{template.name} discarded {4 - rendered} of 4"
