import io
import tarfile
import zipfile

import numpy as np
import pytest
import skimage.data
from PIL import Image

from core.archive import ArchiveLimits
from core.errors import UserError
from trainer.photos import Photo, load_archive


def photo(name="chelsea", size=(96, 72)) -> Image.Image:
    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB").resize(size)


def encode(image: Image.Image, fmt="JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg(name="chelsea", size=(96, 72)) -> bytes:
    return encode(photo(name, size))


def make_zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def load(tmp_path, members, resolution=64, **limits):
    archive = make_zip(tmp_path / "photos.zip", members)
    return load_archive(
        archive,
        tmp_path / "work",
        label="instance_data",
        resolution=resolution,
        limits=ArchiveLimits(**limits),
    )


def test_photos_load_sorted_with_upper_case_extensions(tmp_path):
    photos = load(tmp_path, {"b/IMG_6003.JPG": jpeg("astronaut"), "a.jpeg": jpeg()})
    assert [p.name for p in photos] == ["a.jpeg", "b/IMG_6003.JPG"]
    assert all(p.image.mode == "RGB" and p.caption is None for p in photos)


def test_same_named_files_in_different_folders_are_both_kept(tmp_path):
    photos = load(tmp_path, {"day1/img.jpg": jpeg("chelsea"), "day2/img.jpg": jpeg("coffee")})
    assert [p.name for p in photos] == ["day1/img.jpg", "day2/img.jpg"]
    first, second = (np.asarray(p.image, dtype=float) for p in photos)
    assert np.abs(first - second).mean() > 20  # two different photos, not one twice
    assert np.abs(first - np.asarray(photo("chelsea"), dtype=float)).mean() < 5


def test_a_tar_xz_named_like_a_temp_file_loads(tmp_path):
    archive = tmp_path / "tmpab12file"
    with tarfile.open(archive, "w:xz") as tar:
        data = encode(photo("rocket"), "PNG")
        info = tarfile.TarInfo("trip/ROCKET.PNG")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    photos = load_archive(archive, tmp_path / "work", label="instance_data", resolution=64)
    assert [p.name for p in photos] == ["trip/ROCKET.PNG"]


def test_photos_come_out_upright_and_rgb_from_any_mode(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # the phone was held upright: the stored pixels lie on their side
    photos = load(
        tmp_path,
        {
            "phone.jpg": encode(photo(size=(96, 72)), exif=exif),
            "cutout.png": encode(photo(size=(64, 64)).convert("RGBA"), "PNG"),
            "print.tif": encode(photo(size=(64, 64)).convert("CMYK"), "TIFF"),
            "grey.png": encode(photo(size=(64, 64)).convert("L"), "PNG"),
        },
    )
    sizes = {p.name: p.image.size for p in photos}
    assert sizes["phone.jpg"] == (72, 96)
    assert all(p.image.mode == "RGB" for p in photos)


def test_non_images_are_skipped_with_a_log_line(tmp_path, caplog):
    with caplog.at_level("INFO"):
        photos = load(tmp_path, {"a.jpg": jpeg(), "notes.pdf": b"%PDF-1.4", "todo.txt": b"x"})
    assert [p.name for p in photos] == ["a.jpg"]
    assert "instance_data: skipped notes.pdf (not an image)" in caplog.text
    assert "instance_data: skipped todo.txt (not an image)" in caplog.text


def test_heic_photos_are_skipped_with_a_warning_that_says_what_to_do(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        load(tmp_path, {"a.jpg": jpeg(), "IMG_0001.HEIC": b"\0\0\0\x18ftypheic"})
    assert "skipped IMG_0001.HEIC (HEIC (iPhone) photos are not supported" in caplog.text


def test_captions_from_csv_and_txt_replace_the_prompt_for_their_photos(tmp_path):
    photos = load(
        tmp_path,
        {
            "cat.jpg": jpeg(),
            "space/astro.jpg": jpeg("astronaut"),
            "space/ROCKET.JPG": jpeg("rocket"),
            "cup.jpg": jpeg("coffee"),
            "captions.csv": b'image_file,caption\ncat.jpg,"a photo of sks cat, on a sofa"\n',
            "space/astro.txt": b"a photo of sks astronaut\n",
            "space/rocket.TXT": b"a photo of\n  sks rocket\n",
        },
    )
    assert {p.name: p.caption for p in photos} == {
        "cat.jpg": "a photo of sks cat, on a sofa",
        "space/astro.jpg": "a photo of sks astronaut",
        "space/ROCKET.JPG": "a photo of sks rocket",
        "cup.jpg": None,
    }


def test_a_caption_with_unquoted_commas_is_kept_whole(tmp_path):
    csv = b"image_file,caption\r\ncat.jpg,a photo of sks cat, sitting, on a sofa\r\n"
    photos = load(tmp_path, {"cat.jpg": jpeg(), "captions.csv": csv})
    assert photos[0].caption == "a photo of sks cat, sitting, on a sofa"


def test_csv_rows_match_by_path_or_by_a_unique_file_name(tmp_path, caplog):
    csv = "\n".join(
        [
            "\ufeffImage_File , Caption",  # a BOM and loose header spelling from a spreadsheet
            "A/Cat.JPG,sks cat in a",  # two cat.jpg: the path decides, in any case
            "cup.jpg,sks cup",  # one cup.jpg anywhere: that one
            "cat.jpg,which cat?",  # two cat.jpg: ambiguous, warned about
            "CAFÉ.JPG,sks café",  # NFC in the CSV, any case
        ]
    ).encode()
    members = {
        "a/cat.jpg": jpeg(),
        "b/cat.jpg": jpeg("astronaut"),
        "b/cup.jpg": jpeg("coffee"),
        "café.jpg": jpeg("rocket"),
        "captions.csv": csv,
    }
    with caplog.at_level("WARNING"):
        photos = load(tmp_path, members)
    assert {p.name: p.caption for p in photos} == {
        "a/cat.jpg": "sks cat in a",
        "b/cat.jpg": None,
        "b/cup.jpg": "sks cup",
        "café.jpg": "sks café",
    }
    assert "captions.csv line 4 names 'cat.jpg', which is not a photo here" in caplog.text


def test_a_csv_row_wins_over_a_text_file(tmp_path):
    members = {
        "cat.jpg": jpeg(),
        "cat.txt": b"from the text file",
        "captions.csv": b"image_file,caption\ncat.jpg,from the csv\n",
    }
    assert load(tmp_path, members)[0].caption == "from the csv"


def test_csv_rows_naming_missing_photos_are_warned_about(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        load(tmp_path, {"a.jpg": jpeg(), "captions.csv": b"image_file,caption\nb.jpg,x\n"})
    assert "captions.csv line 2 names 'b.jpg', which is not a photo here" in caplog.text


def test_a_csv_without_the_columns_is_an_error_naming_it(tmp_path):
    with pytest.raises(UserError, match=r"instance_data: captions.csv needs the header line"):
        load(tmp_path, {"a.jpg": jpeg(), "captions.csv": b"file,text\na.jpg,x\n"})


@pytest.mark.parametrize(
    ("csv", "line"),
    [
        (b'image_file,caption\na.jpg,fine\n"a.jpg"x,broken quoting\n', 3),
        (b'image_file,caption\na.jpg,"never closed\n', 2),
    ],
)
def test_a_malformed_csv_is_an_error_naming_the_file_and_line(tmp_path, csv, line):
    with pytest.raises(UserError, match=rf"instance_data: sub/captions.csv line {line} "):
        load(tmp_path, {"sub/a.jpg": jpeg(), "sub/captions.csv": csv})


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_utf8_captions_with_or_without_a_bom_are_read_as_written(tmp_path, bom):
    csv = bom + "image_file,caption\na.jpg,a photo of sks café\n".encode()
    photos = load(tmp_path, {"a.jpg": jpeg(), "captions.csv": csv})
    assert photos[0].caption == "a photo of sks café"


def test_captions_saved_by_a_windows_spreadsheet_fall_back_to_cp1252(tmp_path, caplog):
    csv = "image_file,caption\na.jpg,sks café \u2013 “quoted”\n".encode("cp1252")
    text = "sks naïve".encode("cp1252")
    with caplog.at_level("INFO"):
        photos = load(
            tmp_path, {"a.jpg": jpeg(), "b.jpg": jpeg("coffee"), "captions.csv": csv, "b.txt": text}
        )
    assert [p.caption for p in photos] == ["sks café \u2013 “quoted”", "sks naïve"]
    assert "captions.csv is not UTF-8 (line 2); read it as Windows-1252" in caplog.text


def test_a_caption_file_that_no_encoding_reads_is_an_error_naming_it(tmp_path):
    with pytest.raises(UserError, match=r"a.txt line 1 is neither UTF-8 nor Windows-1252 text"):
        load(tmp_path, {"a.jpg": jpeg(), "a.txt": b"\x81\x8d\x8f\x90\x9d"})


def test_small_photos_are_kept_with_a_warning(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        photos = load(tmp_path, {"tiny.jpg": jpeg(size=(30, 20)), "ok.jpg": jpeg()}, 64)
    assert [p.name for p in photos] == ["ok.jpg", "tiny.jpg"]
    assert photos[1].image.size == (30, 20)
    assert "tiny.jpg is 30x20, smaller than resolution 64" in caplog.text
    assert "ok.jpg" not in caplog.text


def test_large_photos_are_kept_only_as_large_as_training_needs(tmp_path):
    photos = load(tmp_path, {"big.jpg": jpeg("astronaut", size=(512, 512))}, resolution=100)
    assert 100 <= min(photos[0].image.size) < 200


def test_the_same_photo_twice_is_warned_about(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        photos = load(tmp_path, {"a/x.jpg": jpeg(), "b/y.jpg": jpeg(), "c.jpg": jpeg("coffee")})
    assert len(photos) == 3
    assert "instance_data: b/y.jpg is the same file as a/x.jpg" in caplog.text
    assert "c.jpg" not in caplog.text


def test_an_archive_without_images_lists_what_it_found(tmp_path):
    with pytest.raises(UserError) as error:
        load(tmp_path, {"a.txt": b"x", "b.pdf": b"y", "IMG_1.heic": b"z"})
    message = str(error.value)
    assert message.startswith(
        "instance_data: no usable images in the archive (found 3 files: IMG_1.heic, a.txt, b.pdf)"
    )
    assert ".jpg, .jpeg" in message and "HEIC (iPhone) photos are not supported" in message


def test_a_corrupt_photo_is_an_error_that_names_it(tmp_path):
    with pytest.raises(UserError, match=r"instance_data: broken/cat.jpg is not a readable image"):
        load(tmp_path, {"ok.jpg": jpeg(), "broken/cat.jpg": jpeg()[:300]})


def test_a_decompression_bomb_in_the_archive_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    with pytest.raises(UserError, match=r"instance_data: huge/bomb.png is too large"):
        load(tmp_path, {"huge/bomb.png": encode(Image.new("L", (100, 100)), "PNG")})


def test_hostile_archives_stop_before_any_photo_is_read(tmp_path):
    with pytest.raises(UserError, match="refused"):
        load(tmp_path, {"ok.jpg": jpeg(), "../escape.jpg": jpeg()})
    assert not (tmp_path / "escape.jpg").exists() and not (tmp_path / "work").exists()


def test_nothing_extracted_outlives_loading(tmp_path):
    assert [p.name for p in load(tmp_path, {"a.jpg": jpeg()})] == ["a.jpg"]
    assert not (tmp_path / "work").exists()
    with pytest.raises(UserError, match="is not a readable image"):
        load(tmp_path, {"b.jpg": jpeg(), "c.jpg": b"\xff\xd8\xff broken"})
    assert not (tmp_path / "work").exists()


def test_a_photo_is_checked_on_construction():
    image = photo()
    assert Photo("a.jpg", image, "sks cat").caption == "sks cat"
    with pytest.raises(ValueError, match="RGB"):
        Photo("a.jpg", image.convert("L"))
    with pytest.raises(ValueError, match="caption"):
        Photo("a.jpg", image, "  ")
