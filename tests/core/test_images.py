import struct

import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageCms

from core.errors import UserError
from core.images import is_image_name, open_mask, open_rgb, unsupported_hint

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def halves(left=RED, right=BLUE, size=(40, 20)) -> Image.Image:
    image = Image.new("RGB", size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def close(a, b, tolerance=8) -> bool:
    return all(abs(int(x) - int(y)) <= tolerance for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize(
    ("orientation", "size", "red_at", "blue_at"),
    [
        (6, (20, 40), (10, 5), (10, 35)),  # turned 90° clockwise: left half on top
        (8, (20, 40), (10, 35), (10, 5)),  # turned 90° anticlockwise: left half at the bottom
        (3, (40, 20), (35, 10), (5, 10)),  # upside down: left and right swap
    ],
)
def test_exif_orientation_turns_the_photo_upright(tmp_path, orientation, size, red_at, blue_at):
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    halves().save(path, exif=exif, quality=95)
    image = open_rgb(path, label="instance_data")
    assert image.size == size
    assert close(image.getpixel(red_at), RED) and close(image.getpixel(blue_at), BLUE)


def test_transparency_is_composited_on_white(tmp_path):
    path = tmp_path / "cutout.png"
    image = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    image.putpixel((0, 0), (*BLUE, 255))
    image.save(path)
    loaded = open_rgb(path, label="image")
    assert loaded.mode == "RGB"
    assert loaded.getpixel((5, 5)) == WHITE and loaded.getpixel((0, 0)) == BLUE


def test_grey_with_alpha_is_composited_on_white(tmp_path):
    path = tmp_path / "la.png"
    image = Image.new("LA", (4, 4), (0, 0))
    image.putpixel((0, 0), (0, 255))
    image.save(path)
    loaded = open_rgb(path, label="image")
    assert loaded.getpixel((0, 0)) == (0, 0, 0) and loaded.getpixel((3, 3)) == WHITE


def test_palette_images_keep_their_colours_and_transparency(tmp_path):
    path = tmp_path / "sticker.png"
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 255, 0, *RED, *BLUE])
    image.putpixel((1, 1), 1)
    image.putpixel((2, 2), 2)
    image.save(path, transparency=0)
    loaded = open_rgb(path, label="image")
    assert loaded.getpixel((0, 0)) == WHITE  # the transparent green
    assert loaded.getpixel((1, 1)) == RED and loaded.getpixel((2, 2)) == BLUE


@pytest.mark.parametrize("suffix", ["tif", "jpg"])
def test_cmyk_becomes_the_same_colours_in_rgb(tmp_path, suffix):
    path = tmp_path / f"print.{suffix}"
    halves().convert("CMYK").save(path)
    assert Image.open(path).mode == "CMYK"
    loaded = open_rgb(path, label="image")
    assert loaded.mode == "RGB"
    assert close(loaded.getpixel((2, 10)), RED, 12) and close(loaded.getpixel((37, 10)), BLUE, 12)


def test_greyscale_and_bilevel_become_grey_rgb(tmp_path):
    grey, bilevel = tmp_path / "grey.png", tmp_path / "fax.png"
    halves().convert("L").save(grey)
    halves(left=(0, 0, 0), right=WHITE).convert("1").save(bilevel)
    assert open_rgb(grey, label="image").getpixel((0, 0)) == (76, 76, 76)  # red's luma
    loaded = open_rgb(bilevel, label="image")
    assert loaded.getpixel((0, 0)) == (0, 0, 0) and loaded.getpixel((39, 0)) == WHITE


def test_16_bit_greyscale_keeps_its_range(tmp_path):
    path = tmp_path / "scan.png"
    gradient = np.linspace(0, 65535, 256, dtype=np.uint16).reshape(16, 16)
    Image.fromarray(gradient).save(path)
    assert Image.open(path).mode.startswith("I;16")
    loaded = np.asarray(open_rgb(path, label="image"))
    assert loaded.min() == 0 and loaded.max() == 255
    assert len(np.unique(loaded[..., 0])) > 200  # a gradient, not clipped to white


def test_a_dark_16_bit_image_stays_dark(tmp_path):
    path = tmp_path / "dark.png"
    Image.fromarray(np.full((8, 8), 4096, dtype=np.uint16)).save(path)
    assert open_rgb(path, label="image").getpixel((0, 0)) == (16, 16, 16)  # 4096 / 257


def test_float_images_in_0_1_span_0_255(tmp_path):
    path = tmp_path / "depth.tif"
    Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8), mode="F").save(path)
    loaded = np.asarray(open_rgb(path, label="image"))[..., 0]
    assert loaded[0, 0] == 0 and loaded[-1, -1] == 255 and len(np.unique(loaded)) == 64


def swapped_red_blue_profile() -> bytes:
    """An RGB ICC profile whose red primary is sRGB's blue and the reverse."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack(">I", data[128:132])
    entries = {bytes(data[132 + 12 * i : 136 + 12 * i]): 132 + 12 * i for i in range(count)}
    red, blue = entries[b"rXYZ"], entries[b"bXYZ"]
    data[red + 4 : red + 12], data[blue + 4 : blue + 12] = (
        data[blue + 4 : blue + 12],
        data[red + 4 : red + 12],
    )
    return bytes(data)


def test_an_embedded_colour_profile_is_converted_to_srgb(tmp_path):
    path = tmp_path / "wide-gamut.png"
    Image.new("RGB", (4, 4), RED).save(path, icc_profile=swapped_red_blue_profile())
    loaded = open_rgb(path, label="image")
    assert close(loaded.getpixel((0, 0)), BLUE, 3)
    assert "icc_profile" not in loaded.info  # the pixels are sRGB now


def test_a_broken_colour_profile_leaves_the_colours_as_stored(tmp_path, caplog):
    path = tmp_path / "odd.png"
    Image.new("RGB", (4, 4), RED).save(path, icc_profile=b"not a profile" * 20)
    with caplog.at_level("WARNING"):
        assert open_rgb(path, label="image").getpixel((0, 0)) == RED
    assert "odd.png: ignored an unusable colour profile" in caplog.text


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_min_side_decodes_large_photos_smaller_but_never_below_it(tmp_path, fmt):
    path = tmp_path / f"astronaut.{fmt.lower()}"
    Image.fromarray(skimage.data.astronaut()).save(path, fmt)  # 512 x 512
    assert 100 <= min(open_rgb(path, label="image", min_side=100).size) < 200
    assert open_rgb(path, label="image", min_side=600).size == (512, 512)
    assert open_rgb(path, label="image").size == (512, 512)


@pytest.mark.parametrize("min_side", [None, 64])
def test_truncated_jpeg_is_an_error_that_names_it(tmp_path, min_side):
    path = tmp_path / "cut.jpg"
    Image.fromarray(skimage.data.chelsea()).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:4000])
    with pytest.raises(UserError, match=r"instance_data: photos/cut.jpg is not a readable image"):
        open_rgb(path, label="instance_data", shown="photos/cut.jpg", min_side=min_side)


def test_a_file_that_is_no_image_is_named_without_the_work_path(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("shopping list")
    with pytest.raises(UserError) as error:
        open_rgb(path, label="control_image")
    message = str(error.value)
    assert message.startswith("control_image: notes.jpg is not a readable image (unknown")
    assert str(tmp_path) not in message and ".png" in message


@pytest.mark.parametrize("pixels", [300 * 300, 120 * 120])  # above 2x the limit, and above 1x
def test_a_decompression_bomb_is_refused(tmp_path, monkeypatch, pixels):
    path = tmp_path / "huge.png"
    side = int(pixels**0.5)
    Image.new("RGB", (side, side)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    with pytest.raises(UserError, match=r"image: huge.png is too large .*more than 10,000 pixels"):
        open_rgb(path, label="image")


def test_masks_are_greyscale(tmp_path):
    path = tmp_path / "mask.png"
    halves(left=(0, 0, 0), right=WHITE).save(path)
    mask = open_mask(path, label="mask")
    assert mask.mode == "L" and mask.getpixel((0, 0)) == 0 and mask.getpixel((39, 0)) == 255


def test_a_mask_painted_on_a_transparent_layer_repaints_only_the_strokes(tmp_path):
    path = tmp_path / "strokes.png"
    image = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    image.putpixel((3, 3), (255, 255, 255, 255))
    image.save(path)
    mask = open_mask(path, label="mask")
    assert mask.getpixel((3, 3)) == 255 and mask.getpixel((0, 0)) == 0


def test_a_16_bit_mask_keeps_white_white(tmp_path):
    path = tmp_path / "mask16.png"
    Image.fromarray(np.array([[0, 65535]], dtype=np.uint16)).save(path)
    mask = open_mask(path, label="mask")
    assert mask.getpixel((0, 0)) == 0 and mask.getpixel((1, 0)) == 255


def test_a_broken_mask_is_an_error_that_names_the_input(tmp_path):
    path = tmp_path / "m.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 10)
    with pytest.raises(UserError, match=r"mask: m\.png is not a readable image"):
        open_mask(path, label="mask")


def test_image_names_are_recognised_whatever_the_case():
    assert is_image_name("IMG_6003.JPG") and is_image_name("a.jpeg") and is_image_name("b.WebP")
    assert not is_image_name("notes.txt") and not is_image_name("jpg")


def test_heic_and_raw_photos_get_a_hint_to_export_them():
    assert "export them as JPEG" in unsupported_hint("IMG_0001.HEIC")
    assert "RAW" in unsupported_hint("DSC0001.NEF")
    assert unsupported_hint("a.jpg") is None and unsupported_hint("notes.txt") is None
