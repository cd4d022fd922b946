import pickle

import pytest
import torch
from safetensors.torch import save_file

from core.errors import UserError
from core.safetensors_file import describe, require_safetensors


def test_safetensors_is_recognised_by_content_whatever_the_name(tmp_path):
    path = tmp_path / "tmpab12file"  # how uploads arrive: no suffix
    save_file({"w": torch.zeros(2)}, path)
    assert describe(path) == "safetensors"
    assert require_safetensors(path, label="ckpt_base") == path


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


def test_anything_else_is_not_safetensors(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(UserError, match=r"not a \.safetensors file"):
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
