"""scripts/mini_edit_progress.py's curve: the pair sets a curve holds, the series it plots, an earlier run in front."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from PIL import Image

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture(scope="module")
def progress():
    sys.path.insert(0, str(SCRIPTS))  # the script imports its sibling mini_runs
    try:
        spec = importlib.util.spec_from_file_location("mini_edit_progress", SCRIPTS / "mini_edit_progress.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(SCRIPTS))


CURVE = [
    {"step": 250, "place_ocr_exact": 0.16, "place_ocr_agreement": 0.38, "place_psnr": 22.6, "t2i_heldout_exact": 0.98},
    {"step": 500, "place_ocr_exact": 0.22, "place_ocr_agreement": 0.44, "place_psnr": "inf",
     "ocr_exact": 0.0, "ocr_agreement": 0.04, "psnr": 13.8},
]


def test_pair_sets_and_series(progress):
    assert progress.pair_sets(CURVE) == ["suite", "place"]
    assert progress.series(CURVE, "place", "ocr_exact") == ([250, 500], [0.16, 0.22])
    assert progress.series(CURVE, "place", "psnr") == ([250], [22.6])  # "inf" (no pixel changed) is not drawn
    assert progress.series(CURVE, "suite", "psnr") == ([500], [13.8])
    assert progress.series(CURVE, "t2i", "heldout_exact") == ([250], [0.98])


def test_chained_counts_on_from_the_earlier_run(progress, tmp_path):
    earlier = tmp_path / "rows"
    earlier.mkdir()
    rows = [{"step": 1250, "place_ocr_exact": 0.28}, {"step": 3000, "place_ocr_exact": 0.5}]
    (earlier / "edit-curve.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    steps = [entry["step"] for entry in progress.chained(CURVE, earlier, 2500)]
    assert steps == [1250, 2750, 3000]  # the earlier run's steps past the start are not this run's
    assert [entry["step"] for entry in progress.chained(CURVE, None, 0)] == [250, 500]


def test_plot_writes_a_picture(progress, tmp_path):
    path = tmp_path / "docs" / "curve.png"
    progress.plot(CURVE, path, "test")
    with Image.open(path) as image:
        assert image.size[0] > image.size[1] > 100
