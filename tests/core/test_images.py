import numpy as np
import pytest
from PIL import Image

from core.errors import UserError
from core.images import is_image_name, open_mask, open_rgb


def halves(left=(255, 0, 0), right=(0, 0, 255), size=(40, 20)) -> Image.Image:
    image = Image.new("RGB", size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


@pytest.mark.parametrize(("orientation", "top", "bottom"), [(6, "red", "blue"), (8, "blue", "red")])
def test_exif_orientation_turns_the_photo_upright(tmp_path, orientation, top, bottom):
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    halves().save(path, exif=exif, quality=95)
    image = open_rgb(path, label="instance_data")
    assert image.size == (20, 40)  # rotated a quarter turn
    colour = {"red": 0, "blue": 2}
    assert np.argmax(image.getpixel((10, 5))) == colour[top]
    assert np.argmax(image.getpixel((10, 35))) == colour[bottom]


def test_transparency_is_composited_on_white(tmp_path):
    path = tmp_path / "cutout.png"
    image = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    image.putpixel((0, 0), (0, 0, 255, 255))
    image.save(path)
    loaded = open_rgb(path, label="image")
    assert loaded.mode == "RGB"
    assert loaded.getpixel((5, 5)) == (255, 255, 255) and loaded.getpixel((0, 0)) == (0, 0, 255)


@pytest.mark.parametrize("mode", ["LA", "P", "CMYK", "L", "1"])
def test_every_colour_mode_becomes_rgb(tmp_path, mode):
    path = tmp_path / f"image.{'tif' if mode == 'CMYK' else 'png'}"
    halves().convert(mode).save(path)
    loaded = open_rgb(path, label="image")
    assert loaded.mode == "RGB" and loaded.size == (40, 20)
    assert loaded.getpixel((0, 0)) != loaded.getpixel((39, 0)) or mode in ("1",)


def test_16_bit_greyscale_keeps_its_range(tmp_path):
    path = tmp_path / "scan.png"
    gradient = np.linspace(0, 65535, 256, dtype=np.uint16).reshape(16, 16)
    Image.fromarray(gradient).save(path)
    assert Image.open(path).mode.startswith("I")
    loaded = np.asarray(open_rgb(path, label="image"))
    assert loaded.min() == 0 and loaded.max() == 255
    assert len(np.unique(loaded[..., 0])) > 200  # a gradient, not clipped to white


def test_truncated_jpeg_is_an_error_that_names_it(tmp_path):
    path = tmp_path / "cut.jpg"
    halves(size=(200, 200)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:400])
    with pytest.raises(UserError, match=r"instance_data: photos/cut.jpg is not a readable image"):
        open_rgb(path, label="instance_data", shown="photos/cut.jpg")


def test_a_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "huge.png"
    Image.new("RGB", (300, 300)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    with pytest.raises(UserError, match="too large to decode safely"):
        open_rgb(path, label="image")


def test_masks_are_greyscale(tmp_path):
    path = tmp_path / "mask.png"
    halves(left=(0, 0, 0), right=(255, 255, 255)).save(path)
    mask = open_mask(path, label="mask")
    assert mask.mode == "L" and mask.getpixel((0, 0)) == 0 and mask.getpixel((39, 0)) == 255


def test_image_names_are_recognised_whatever_the_case():
    assert is_image_name("IMG_6003.JPG") and is_image_name("a.jpeg") and is_image_name("b.WebP")
    assert not is_image_name("notes.txt") and not is_image_name("jpg")
