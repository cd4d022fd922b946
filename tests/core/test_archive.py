import io
import tarfile
import unicodedata
import zipfile
from functools import cache
from pathlib import Path

import pytest
import skimage.data
from PIL import Image

from core.archive import ArchiveError, ArchiveLimits, extract


@cache
def jpeg(name: str = "chelsea") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(getattr(skimage.data, name)()).resize((64, 48)).save(buffer, "JPEG")
    return buffer.getvalue()


def zip_with(path: Path, members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def tar_with(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def names(files, root):
    return sorted(p.relative_to(root).as_posix() for p in files)


def run(archive, tmp_path, **limits):
    out = tmp_path / "out"
    return names(extract(archive, out, label="instance_data", limits=ArchiveLimits(**limits)), out)


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_tar_in_any_compression_is_read_by_content(tmp_path, mode):
    archive = tar_with(tmp_path / "upload", {"a/x.jpg": jpeg(), "b.png": b"2"}, mode)
    assert run(archive, tmp_path) == ["a/x.jpg", "b.png"]
    assert (tmp_path / "out/a/x.jpg").read_bytes() == jpeg()


@pytest.mark.parametrize("name", ["tmpk2j3file", "photos.bin", "photos.tar.gz"])
def test_a_zip_is_read_by_content_whatever_its_name(tmp_path, name):
    assert run(zip_with(tmp_path / name, {"x.jpg": jpeg()}), tmp_path) == ["x.jpg"]


def test_a_tar_named_zip_is_read_as_a_tar(tmp_path):
    assert run(tar_with(tmp_path / "photos.zip", {"x.jpg": jpeg()}), tmp_path) == ["x.jpg"]


def test_same_named_files_in_different_folders_are_both_kept(tmp_path):
    members = {"day1/img.jpg": jpeg("chelsea"), "day2/img.jpg": jpeg("astronaut")}
    assert run(zip_with(tmp_path / "p.zip", members), tmp_path) == list(members)
    for name, data in members.items():
        assert (tmp_path / "out" / name).read_bytes() == data


def test_macos_metadata_and_dotfiles_are_skipped_with_a_log_line(tmp_path, caplog):
    archive = zip_with(
        tmp_path / "p.zip",
        {
            "__MACOSX/._a.jpg": b"x",
            ".DS_Store": b"x",
            "a.jpg": jpeg(),
            "photos/.hidden/b.jpg": b"x",
            "photos/._c.jpg": b"x",
        },
    )
    with caplog.at_level("INFO"):
        assert run(archive, tmp_path) == ["a.jpg"]
    assert "instance_data: skipped __MACOSX/._a.jpg (macOS metadata)" in caplog.text
    assert "skipped .DS_Store (hidden file)" in caplog.text
    assert "skipped photos/.hidden/b.jpg (hidden file)" in caplog.text
    assert not (tmp_path / "out/__MACOSX").exists() and not (tmp_path / "out/.DS_Store").exists()


@pytest.mark.parametrize(
    "name",
    [
        "../../evil.jpg",
        "/tmp/db-archive-test-evil.jpg",
        "a/../../evil.jpg",
        "..\\..\\evil.jpg",
        "C:/evil.jpg",
    ],
)
@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_paths_escaping_the_work_dir_are_refused(tmp_path, name, kind):
    out = tmp_path / "deep" / "out"
    writer = zip_with if kind == "zip" else tar_with
    archive = writer(tmp_path / "evil", {"ok.jpg": jpeg(), name: b"pwned"})
    with pytest.raises(ArchiveError, match=r"instance_data: refused: member .*evil\.jpg"):
        extract(archive, out, label="instance_data")
    assert not list(tmp_path.rglob("evil.jpg"))
    assert not Path("/tmp/db-archive-test-evil.jpg").exists()
    assert not out.exists()  # nothing left half-extracted


def add_link(tar: tarfile.TarFile, name: str, kind: bytes, target: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    tar.addfile(info)


def test_tar_links_devices_and_fifos_are_not_followed_or_created(tmp_path, caplog):
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as tar:
        tar.addfile(tarfile.TarInfo("real.jpg"), io.BytesIO(b""))
        add_link(tar, "sym.jpg", tarfile.SYMTYPE, "/etc/passwd")
        add_link(tar, "hard.jpg", tarfile.LNKTYPE, "real.jpg")
        add_link(tar, "fifo", tarfile.FIFOTYPE)
        add_link(tar, "tty", tarfile.CHRTYPE)
    with caplog.at_level("INFO"):
        assert run(archive, tmp_path) == ["real.jpg"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["real.jpg"]
    assert "skipped sym.jpg (a link is never followed)" in caplog.text
    assert "skipped hard.jpg (a link is never followed)" in caplog.text
    assert "skipped fifo (not a regular file)" in caplog.text


def test_a_file_behind_a_symlinked_folder_lands_inside_the_work_dir(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = tmp_path / "sneaky.tar"
    with tarfile.open(archive, "w") as tar:
        add_link(tar, "photos", tarfile.SYMTYPE, str(outside))
        info = tarfile.TarInfo("photos/evil.jpg")
        info.size = len(jpeg())
        tar.addfile(info, io.BytesIO(jpeg()))
    assert run(archive, tmp_path) == ["photos/evil.jpg"]
    assert not (tmp_path / "out/photos").is_symlink()
    assert list(outside.iterdir()) == []


def test_zip_symlink_entries_are_skipped(tmp_path, caplog):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link.jpg")
        info.external_attr = 0o120777 << 16  # a symlink, as `zip -y` stores it
        zf.writestr(info, "/etc/passwd")
        zf.writestr("real.jpg", jpeg())
    with caplog.at_level("INFO"):
        assert run(archive, tmp_path) == ["real.jpg"]
    assert not (tmp_path / "out/link.jpg").exists() and not (tmp_path / "out/link.jpg").is_symlink()
    assert "skipped link.jpg (a link is never followed)" in caplog.text


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_zip_bomb_stops_at_the_size_limit(tmp_path, kind):
    writer = zip_with if kind == "zip" else tar_with
    archive = writer(tmp_path / "bomb", {"a.jpg": jpeg(), "b.jpg": b"\0" * 5_000_000})
    assert archive.stat().st_size < 30_000
    with pytest.raises(ArchiveError, match=r"stopped at b\.jpg: .* more than 1,000,000 bytes"):
        run(archive, tmp_path, max_total_bytes=1_000_000)
    assert not (tmp_path / "out").exists()


def test_skipped_members_count_towards_the_size_limit(tmp_path):
    members = {"a.jpg": jpeg(), "__MACOSX/._a.jpg": b"\0" * 5_000_000}
    archive = tar_with(tmp_path / "bomb.tgz", members)  # a tar is read through all of it
    with pytest.raises(ArchiveError, match=r"stopped at __MACOSX/\._a\.jpg"):
        run(archive, tmp_path, max_total_bytes=1_000_000)


def test_one_member_over_its_limit_is_refused_while_streaming(tmp_path):
    archive = zip_with(tmp_path / "big.zip", {"a.jpg": b"\0" * 300_000})
    with pytest.raises(ArchiveError, match=r"a\.jpg unpacks to more than 100,000 bytes"):
        run(archive, tmp_path, max_member_bytes=100_000)
    assert not (tmp_path / "out").exists()


def test_too_many_files_are_refused(tmp_path):
    archive = zip_with(tmp_path / "many.zip", {f"{i}.jpg": b"x" for i in range(6)})
    with pytest.raises(ArchiveError, match="more than 5 entries"):
        run(archive, tmp_path, max_files=5)


def test_skipped_entries_count_towards_the_entry_limit(tmp_path):
    members = {"a.jpg": jpeg(), **{f"__MACOSX/._{i}.jpg": b"" for i in range(6)}}
    archive = tar_with(tmp_path / "many.tar", members, "w")
    with pytest.raises(ArchiveError, match="more than 5 entries"):
        run(archive, tmp_path, max_files=5)


@pytest.mark.parametrize(
    ("data", "looks_like"),
    [
        (jpeg(), "a JPEG image"),
        (b"just some notes\n", "text"),
        (b"", "an empty file"),
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "an HTML web page"),
        (b"PK\x03\x04" + b"\0" * 40, "a damaged"),
    ],
)
def test_a_non_archive_says_what_it_looks_like(tmp_path, data, looks_like):
    path = tmp_path / "photos.zip"
    path.write_bytes(data)
    with pytest.raises(ArchiveError) as error:
        extract(path, tmp_path / "out", label="instance_data")
    message = str(error.value)
    assert message.startswith("instance_data: photos.zip is not an archive")
    assert looks_like in message and ".zip, or .tar" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_an_empty_archive_is_an_error(tmp_path, kind):
    archive = (zip_with if kind == "zip" else tar_with)(tmp_path / "empty", {})
    with pytest.raises(ArchiveError, match=r"class_data: the archive contains no files$"):
        extract(archive, tmp_path / "out", label="class_data")
    assert not (tmp_path / "out").exists()


def test_an_archive_of_only_skipped_entries_says_what_was_skipped(tmp_path):
    archive = zip_with(tmp_path / "mac.zip", {"__MACOSX/._a.jpg": b"x", ".DS_Store": b"x"})
    with pytest.raises(ArchiveError, match=r"no files \(only __MACOSX/\._a\.jpg, \.DS_Store"):
        run(archive, tmp_path)


def patch_zip(path: Path, header: bytes, offset: int, value: bytes) -> None:
    """Overwrite bytes at `offset` in every local and central header (`PK\\x03\\x04`...)."""
    data = bytearray(path.read_bytes())
    at = data.find(header)
    while at >= 0:
        data[at + offset : at + offset + len(value)] = value
        at = data.find(header, at + 1)
    path.write_bytes(bytes(data))


def test_a_password_protected_zip_is_an_error_naming_the_member(tmp_path):
    archive = zip_with(tmp_path / "locked.zip", {"cat.jpg": jpeg()})
    patch_zip(archive, b"PK\x03\x04", 6, b"\x01")  # general purpose flag: encrypted
    patch_zip(archive, b"PK\x01\x02", 8, b"\x01")
    with pytest.raises(ArchiveError, match=r"cat\.jpg is encrypted; upload an archive without"):
        run(archive, tmp_path)


def test_an_unknown_compression_method_is_an_error_naming_the_member(tmp_path):
    archive = zip_with(tmp_path / "deflate64.zip", {"cat.jpg": jpeg()})
    patch_zip(archive, b"PK\x03\x04", 8, b"\x09\x00")  # method 9: Deflate64
    patch_zip(archive, b"PK\x01\x02", 10, b"\x09\x00")
    with pytest.raises(ArchiveError, match=r"cannot unpack cat\.jpg: .*standard zip"):
        run(archive, tmp_path)


def test_a_corrupt_member_is_an_error_naming_it(tmp_path):
    archive = zip_with(tmp_path / "bad.zip", {"ok.jpg": jpeg(), "cat.jpg": jpeg()}, 0)
    data = bytearray(archive.read_bytes())
    data[data.rfind(b"\xff\xd9") - 200] ^= 0xFF  # a flipped byte in the second photo
    archive.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=r"cannot unpack cat\.jpg: Bad CRC-32"):
        run(archive, tmp_path)
    assert not (tmp_path / "out").exists()


def test_a_truncated_tar_is_an_error_naming_the_archive(tmp_path):
    members = {f"{i}.jpg": jpeg(name) for i, name in enumerate(["chelsea", "astronaut", "coffee"])}
    archive = tar_with(tmp_path / "upload.tgz", members)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ArchiveError, match=r"instance_data: .*(upload\.tgz is damaged|unpack)"):
        run(archive, tmp_path)
    assert not (tmp_path / "out").exists()


def test_windows_separators_make_folders_not_odd_file_names(tmp_path):
    archive = zip_with(tmp_path / "win.zip", {"day1\\": b"", "day1\\img.jpg": jpeg()})
    assert run(archive, tmp_path) == ["day1/img.jpg"]


def test_decomposed_unicode_names_from_macos_are_stored_composed(tmp_path):
    decomposed = unicodedata.normalize("NFD", "café.jpg")
    assert run(zip_with(tmp_path / "mac.zip", {decomposed: jpeg()}), tmp_path) == ["café.jpg"]


def test_a_repeated_member_keeps_the_first_copy(tmp_path, caplog):
    archive = tar_with(tmp_path / "twice.tar", {"a.jpg": jpeg()}, "w")
    with tarfile.open(archive, "a") as tar:
        info = tarfile.TarInfo("a.jpg")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"junk"))
    with caplog.at_level("INFO"):
        assert run(archive, tmp_path) == ["a.jpg"]
    assert (tmp_path / "out/a.jpg").read_bytes() == jpeg()
    assert "skipped a.jpg (a second copy)" in caplog.text


def test_the_destination_must_be_empty(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="must be empty"):
        extract(zip_with(tmp_path / "p.zip", {"a.jpg": jpeg()}), out, label="instance_data")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("field", ["max_files", "max_total_bytes", "max_member_bytes"])
@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_limits_must_be_positive_whole_numbers(field, value):
    with pytest.raises(ValueError, match=f"ArchiveLimits.{field} must be a positive int"):
        ArchiveLimits(**{field: value})


def test_an_archive_unpacking_to_far_more_than_its_size_is_refused(tmp_path):
    archive = zip_with(tmp_path / "small.zip", {"a.jpg": jpeg(), "b.jpg": b"\0" * 3_000_000})
    with pytest.raises(ArchiveError) as error:
        run(archive, tmp_path, min_allowance=1_000_000, max_expansion=100)
    assert "stopped at b.jpg: the archive unpacks to more than 1,000,000 bytes" in str(error.value)
    assert "at most 100 times its own size" in str(error.value)
    assert not (tmp_path / "out").exists()


def test_a_name_too_long_is_refused_without_the_server_path(tmp_path):
    long_name = "x" * 5_500 + ".jpg"
    archive = tar_with(tmp_path / "long.tar", {"ok.jpg": jpeg(), long_name: b"1"}, "w")
    with pytest.raises(ArchiveError) as error:
        run(archive, tmp_path)
    message = str(error.value)
    assert "has a file or folder name of 5,504 bytes; at most 255 are allowed" in message
    assert str(tmp_path) not in message and len(message) < 300


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_file_and_a_folder_with_one_name_are_an_error_in_words(tmp_path, kind):
    writer = zip_with if kind == "zip" else tar_with
    archive = writer(tmp_path / "clash", {"a": b"file", "a/b.jpg": jpeg()})
    with pytest.raises(ArchiveError) as error:
        run(archive, tmp_path)
    message = str(error.value)
    assert message == (
        "instance_data: cannot unpack a/b.jpg: a file and a folder in it have the same name"
    )


def symlink_tar(path: Path, links: int) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("a.jpg"), io.BytesIO(b""))
        for i in range(links):
            add_link(tar, f"l{i}", tarfile.SYMTYPE, "a.jpg")
        info = tarfile.TarInfo("b.jpg")
        data = jpeg()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_skipped_entries_are_logged_once_each_up_to_a_bound_then_summed(tmp_path, caplog):
    with caplog.at_level("INFO"):
        assert run(symlink_tar(tmp_path / "links.tgz", 50), tmp_path) == ["a.jpg", "b.jpg"]
    lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(lines) == 21
    assert lines[-1] == "instance_data: skipped 30 more entries (a link is never followed: 30)"


def test_a_tar_of_200000_links_is_refused_by_the_entry_bound(tmp_path, caplog):
    archive = symlink_tar(tmp_path / "links.tgz", 200_000)
    assert archive.stat().st_size < 4_000_000
    with caplog.at_level("INFO"), pytest.raises(ArchiveError, match="more than 10,000 entries"):
        run(archive, tmp_path)
    assert len(caplog.records) <= 21
