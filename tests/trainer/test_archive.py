import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from trainer.archive import ArchiveError, ArchiveLimits, extract


def zip_with(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
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


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_tar_in_any_compression_is_read_by_content(tmp_path, mode):
    archive = tar_with(tmp_path / "upload", {"a/x.jpg": b"1", "b.png": b"2"}, mode)
    files = extract(archive, tmp_path / "out", label="instance_data")
    assert names(files, tmp_path / "out") == ["a/x.jpg", "b.png"]


def test_a_zip_without_a_suffix_is_read_by_content(tmp_path):
    archive = zip_with(tmp_path / "tmpk2j3file", {"x.jpg": b"1"})
    assert len(extract(archive, tmp_path / "out", label="instance_data")) == 1


def test_same_named_files_in_different_folders_are_both_kept(tmp_path):
    archive = zip_with(tmp_path / "p.zip", {"day1/img.jpg": b"one", "day2/img.jpg": b"two"})
    out = tmp_path / "out"
    extract(archive, out, label="instance_data")
    assert (out / "day1/img.jpg").read_bytes() == b"one"
    assert (out / "day2/img.jpg").read_bytes() == b"two"


def test_macos_metadata_and_dotfiles_are_skipped_with_a_log_line(tmp_path, caplog):
    archive = zip_with(
        tmp_path / "p.zip",
        {"__MACOSX/._a.jpg": b"x", ".DS_Store": b"x", "a.jpg": b"ok", "photos/.hidden/b.jpg": b"x"},
    )
    with caplog.at_level("INFO"):
        files = extract(archive, tmp_path / "out", label="instance_data")
    assert names(files, tmp_path / "out") == ["a.jpg"]
    assert "skipped __MACOSX/._a.jpg (macOS metadata)" in caplog.text
    assert "skipped .DS_Store (hidden file)" in caplog.text


@pytest.mark.parametrize(
    "name",
    ["../../evil.jpg", "/etc/evil.jpg", "a/../../evil.jpg", "..\\..\\evil.jpg", "C:/evil.jpg"],
)
@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_paths_escaping_the_work_dir_are_refused(tmp_path, name, kind):
    out = tmp_path / "deep" / "out"
    writer = zip_with if kind == "zip" else tar_with
    archive = writer(tmp_path / "evil", {"ok.jpg": b"1", name: b"pwned"})
    with pytest.raises(ArchiveError, match="refused"):
        extract(archive, out, label="instance_data")
    assert not list(tmp_path.rglob("evil.jpg"))
    assert not out.exists()  # nothing left half-extracted


def test_tar_links_are_not_followed_or_created(tmp_path, caplog):
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as tar:
        for name, kind, target in [
            ("sym.jpg", tarfile.SYMTYPE, "/etc/passwd"),
            ("hard.jpg", tarfile.LNKTYPE, "/etc/passwd"),
            ("fifo", tarfile.FIFOTYPE, ""),
        ]:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info)
        info = tarfile.TarInfo("real.jpg")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))
    with caplog.at_level("INFO"):
        files = extract(archive, tmp_path / "out", label="instance_data")
    assert names(files, tmp_path / "out") == ["real.jpg"]
    assert not (tmp_path / "out" / "sym.jpg").exists() and not (tmp_path / "out/hard.jpg").exists()
    assert "skipped sym.jpg (a link is never followed)" in caplog.text


def test_zip_symlink_entries_are_skipped(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link.jpg")
        info.external_attr = 0o120777 << 16  # a symlink, as `zip -y` stores it
        zf.writestr(info, "/etc/passwd")
        zf.writestr("real.jpg", b"ok")
    files = extract(archive, tmp_path / "out", label="instance_data")
    assert names(files, tmp_path / "out") == ["real.jpg"]


def test_a_zip_bomb_stops_at_the_size_limit(tmp_path):
    archive = zip_with(tmp_path / "bomb.zip", {"a.jpg": b"\0" * 5_000_000})
    assert archive.stat().st_size < 20_000
    limits = ArchiveLimits(max_total_bytes=1_000_000)
    with pytest.raises(ArchiveError, match="size limit"):
        extract(archive, tmp_path / "out", label="instance_data", limits=limits)
    assert not (tmp_path / "out").exists()


def test_too_many_files_are_refused(tmp_path):
    archive = zip_with(tmp_path / "many.zip", {f"{i}.jpg": b"x" for i in range(6)})
    with pytest.raises(ArchiveError, match="more than 5 files"):
        extract(archive, tmp_path / "out", label="instance_data", limits=ArchiveLimits(max_files=5))


@pytest.mark.parametrize(
    ("data", "looks_like"),
    [
        (b"\xff\xd8\xff\xe0" + b"\0" * 100, "a JPEG image"),
        (b"just some notes\n", "text"),
        (b"", "an empty file"),
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


def test_an_empty_archive_is_an_error(tmp_path):
    archive = zip_with(tmp_path / "empty.zip", {})
    with pytest.raises(ArchiveError, match="contains no files"):
        extract(archive, tmp_path / "out", label="class_data")
