import io
import zipfile

import pytest
from PIL import Image

from buildkit.sample_photos import photo
from core.errors import UserError
from trainer.photos import load_archive


def jpeg(name="chelsea", size=(80, 60)) -> bytes:
    buffer = io.BytesIO()
    photo(name).resize(size).save(buffer, "JPEG")
    return buffer.getvalue()


def make_zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def load(tmp_path, members, resolution=64):
    archive = make_zip(tmp_path / "photos.zip", members)
    return load_archive(archive, tmp_path / "work", label="instance_data", resolution=resolution)


def test_photos_load_sorted_with_upper_case_extensions(tmp_path):
    photos = load(tmp_path, {"b/IMG_6003.JPG": jpeg("astronaut"), "a.jpeg": jpeg()})
    assert [p.name for p in photos] == ["a.jpeg", "b/IMG_6003.JPG"]
    assert all(p.image.mode == "RGB" for p in photos)


def test_non_images_are_skipped_with_a_log_line(tmp_path, caplog):
    with caplog.at_level("INFO"):
        photos = load(tmp_path, {"a.jpg": jpeg(), "notes.pdf": b"%PDF-1.4"})
    assert [p.name for p in photos] == ["a.jpg"]
    assert "instance_data: skipped notes.pdf (not an image)" in caplog.text


def test_captions_from_csv_and_txt_replace_the_prompt_for_their_photos(tmp_path):
    photos = load(
        tmp_path,
        {
            "cat.jpg": jpeg(),
            "space/astro.jpg": jpeg("astronaut"),
            "cup.jpg": jpeg("coffee"),
            "captions.csv": b"image_file,caption\ncat.jpg,a photo of sks cat on a sofa\n",
            "space/astro.txt": b"a photo of sks astronaut\n",
        },
    )
    captions = {p.name: p.caption for p in photos}
    assert captions == {
        "cat.jpg": "a photo of sks cat on a sofa",
        "space/astro.jpg": "a photo of sks astronaut",
        "cup.jpg": None,
    }


def test_csv_rows_naming_missing_photos_are_warned_about(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        load(tmp_path, {"a.jpg": jpeg(), "captions.csv": b"image_file,caption\nb.jpg,x\n"})
    assert "captions.csv line 2 names 'b.jpg', which is not an image" in caplog.text


def test_a_csv_without_the_columns_is_an_error_naming_it(tmp_path):
    with pytest.raises(UserError, match=r"captions.csv needs the columns image_file,caption"):
        load(tmp_path, {"a.jpg": jpeg(), "captions.csv": b"file,text\na.jpg,x\n"})


def test_small_photos_are_kept_with_a_warning(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        photos = load(tmp_path, {"tiny.jpg": jpeg(size=(30, 20))}, resolution=64)
    assert len(photos) == 1
    assert "tiny.jpg is 30x20, smaller than resolution 64" in caplog.text


def test_an_archive_without_images_lists_what_it_found(tmp_path):
    with pytest.raises(
        UserError, match=r"no usable images in the archive \(found 2 files: a.txt, b.pdf\)"
    ):
        load(tmp_path, {"a.txt": b"x", "b.pdf": b"y"})


def test_a_corrupt_photo_is_an_error_that_names_it(tmp_path):
    with pytest.raises(UserError, match=r"instance_data: broken/cat.jpg is not a readable image"):
        load(tmp_path, {"ok.jpg": jpeg(), "broken/cat.jpg": jpeg()[:300]})


def test_loading_again_replaces_the_previous_extraction(tmp_path):
    load(tmp_path, {"a.jpg": jpeg()})
    photos = load(tmp_path, {"b.jpg": jpeg()})
    assert [p.name for p in photos] == ["b.jpg"]
    assert Image.open(tmp_path / "work" / "b.jpg").size == (80, 60)
