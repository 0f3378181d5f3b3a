"""Condition images: the RGB policy, unreadable files, and the area-preserving resize."""

import io

import numpy as np
import pytest
from PIL import Image

from qwenimage.text.errors import ImageError
from qwenimage.images import EDIT_AREA, EDIT_PLUS_VL_AREA, condition_size, load_image, resize_to_area, to_rgb
from tests.helpers import png_declaring


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["L", "1", "P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBA", "LA", "La", "PA",
                                  "RGBa", "I", "I;16", "I;16B", "F"])
def test_every_mode_becomes_rgb_of_the_same_size(mode):
    rgb = to_rgb(Image.new(mode, (5, 3)))
    assert rgb.mode == "RGB" and rgb.size == (5, 3)


def test_transparent_pixels_become_white():
    image = Image.new("RGBA", (2, 1), (10, 20, 30, 255))
    image.putpixel((1, 0), (0, 0, 0, 0))
    assert to_rgb(image).getpixel((0, 0)) == (10, 20, 30)
    assert to_rgb(image).getpixel((1, 0)) == (255, 255, 255)


def test_palette_transparency_becomes_white():
    image = Image.new("P", (2, 1), 0)
    image.putpalette([0, 0, 0, 200, 0, 0])
    image.putpixel((1, 0), 1)
    image.info["transparency"] = 0
    assert to_rgb(image).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(image).getpixel((1, 0)) == (200, 0, 0)


def test_16_bit_greyscale_is_scaled_not_clipped():
    image = Image.fromarray(np.array([[0, 257 * 100, 65535]], dtype=np.uint16))
    assert image.mode == "I;16"
    assert [to_rgb(image).getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (100, 100, 100), (255, 255, 255)]


def test_32_bit_integer_greyscale_holding_8_bit_values_is_kept():
    image = Image.fromarray(np.array([[0, 100, 255]], dtype=np.int32))
    assert image.mode == "I"
    assert to_rgb(image).getpixel((1, 0)) == (100, 100, 100)


def test_float_greyscale_in_unit_range_is_scaled():
    image = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert to_rgb(image).getpixel((1, 0)) == (128, 128, 128)


def test_rgb_image_is_returned_as_is():
    image = Image.new("RGB", (4, 4), (1, 2, 3))
    assert to_rgb(image) is image


def test_truncated_image_is_an_image_error(tmp_path):
    data = _png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.png"):
        load_image(path)
    with pytest.raises(ImageError, match="cannot convert"):
        to_rgb(Image.open(path))


def test_missing_file_and_non_image_are_image_errors(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    for path in (tmp_path / "missing.png", tmp_path / "notes.png"):
        with pytest.raises(ImageError, match="cannot read image"):
            load_image(path)


def test_load_image_applies_exif_orientation_and_converts(tmp_path):
    image = Image.new("L", (40, 20), 128)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == (20, 40)


def test_not_an_image_and_empty_image_are_errors():
    with pytest.raises(ImageError, match="expected a PIL image"):
        to_rgb(np.zeros((4, 4, 3)))
    with pytest.raises(ImageError, match="no pixels"):
        to_rgb(Image.new("RGB", (0, 4)))


@pytest.mark.parametrize("size", [(1024, 1024), (1920, 1080), (480, 640), (33, 2000), (7, 5)])
@pytest.mark.parametrize("area", [EDIT_AREA, EDIT_PLUS_VL_AREA])
def test_condition_size_rounds_the_exact_area_preserving_size_to_multiples_of_32(size, area):
    width, height = condition_size(*size, area=area)
    exact_width = np.sqrt(area * size[0] / size[1])
    exact_height = exact_width * size[1] / size[0]
    assert width % 32 == 0 and height % 32 == 0
    assert abs(width - max(exact_width, 32)) <= 16 and abs(height - max(exact_height, 32)) <= 16


def test_extreme_aspect_ratio_is_an_error():
    with pytest.raises(ImageError, match="aspect ratio 1x5000"):
        condition_size(1, 5000)


def test_resize_to_area_gives_rgb_at_the_condition_size():
    image = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    resized = resize_to_area(image, EDIT_PLUS_VL_AREA)
    assert resized.mode == "RGB" and resized.size == condition_size(300, 200, EDIT_PLUS_VL_AREA)
    assert resized.getpixel((0, 0)) == (255, 255, 255)


def test_decompression_bomb_is_an_image_error_naming_file_pixels_and_limit(tmp_path):
    from qwenimage.images import MAX_PIXELS

    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(20000, 20000))
    assert path.stat().st_size < 100
    with pytest.raises(ImageError, match=rf"bomb.png: image declares 400,000,000 pixels, more than the limit "
                                         rf"of {MAX_PIXELS:,} pixels"):
        load_image(path)
    with pytest.raises(ImageError, match="image data: image declares 400,000,000 pixels"):
        load_image(io.BytesIO(path.read_bytes()))  # file objects too (training shards hold bytes)


def test_image_over_our_limit_but_under_pillows_is_refused_with_its_size(tmp_path, monkeypatch):
    import qwenimage.images as images

    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    path = tmp_path / "big.png"
    Image.new("RGB", (50, 40)).save(path)
    with pytest.raises(ImageError, match=r"big.png: image declares 2,000 pixels \(50x40\), more than the limit "
                                         r"of 1,000 pixels"):
        load_image(path)


def test_training_records_get_the_bomb_as_a_bad_image_error(tmp_path):
    from qwenimage.train.records import open_record_image

    (tmp_path / "bomb.png").write_bytes(png_declaring(20000, 20000))
    with pytest.raises(ImageError, match="bomb.png: image declares 400,000,000 pixels"):
        open_record_image(tmp_path / "bomb.png")
