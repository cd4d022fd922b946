import pickle
import struct
import zipfile

import pytest
import torch
from safetensors.torch import save_file

from core.errors import UserError
from core.safetensors_file import describe, read_header, require_safetensors


@pytest.mark.parametrize("name", ["tmpab12file", "tmpab12file.bin", "upload.ckpt"])
def test_safetensors_is_recognised_by_content_whatever_the_name(tmp_path, name):
    path = tmp_path / name  # how uploads arrive: no suffix, or whatever the mime suggested
    save_file({"w": torch.zeros(2), "b": torch.ones(3)}, path)
    assert describe(path) == "safetensors"
    assert require_safetensors(path, label="ckpt_base") == path
    assert sorted(read_header(path, label="ckpt_base").keys) == ["b", "w"]


@pytest.mark.parametrize("writer", ["torch_zip", "raw_pickle"])
def test_pickles_are_refused_even_when_named_safetensors(tmp_path, writer):
    path = tmp_path / "model.safetensors"
    if writer == "torch_zip":
        torch.save({"w": torch.zeros(2)}, path)
    else:
        path.write_bytes(pickle.dumps({"w": [0.0]}))
    assert describe(path) == "pickle"
    with pytest.raises(UserError, match=r"ckpt_base: model.safetensors is a pickle checkpoint"):
        require_safetensors(path, label="ckpt_base")


def test_a_truncated_file_is_named_truncated(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(
        UserError, match=r"model.safetensors is truncated: its header describes 4,000"
    ):
        require_safetensors(path, label="ckpt_base")


def test_a_header_claiming_a_terabyte_is_not_called_a_pickle(tmp_path):
    path = tmp_path / "tmpfile.bin"
    path.write_bytes(struct.pack("<Q", 2**40) + b"{}" * 10)
    with pytest.raises(UserError) as error:
        require_safetensors(path, label="ckpt_base")
    assert "not a .safetensors file" in str(error.value) and "pickle" not in str(error.value)


def test_a_photos_zip_is_called_a_zip_archive(tmp_path):
    path = tmp_path / "tmpfile.bin"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("cat.jpg", b"\xff\xd8\xff" + b"0" * 100)
    assert describe(path) == "zip"
    with pytest.raises(UserError, match=r"is a zip archive \(photos\?\), not a model checkpoint"):
        require_safetensors(path, label="ckpt_base")


def test_an_empty_upload_points_at_the_data_uri(tmp_path):
    path = tmp_path / "tmpfile"
    path.write_bytes(b"")
    with pytest.raises(UserError, match=r"empty \(0 bytes; if you sent a data URI"):
        require_safetensors(path, label="ckpt_base")


def test_anything_else_is_not_safetensors(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, these are notes")
    with pytest.raises(UserError, match=r"notes.txt is not a \.safetensors file"):
        require_safetensors(path, label="ckpt_base")


def test_torch_load_is_weights_only_once_core_is_imported(tmp_path):
    import core  # noqa: F401

    class Boom:
        def __reduce__(self):
            return (print, ("code ran",))

    path = tmp_path / "evil.pt"
    torch.save(Boom(), path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=False)  # forced to weights-only anyway
