"""Hostile and broken inputs through the trainer's real Cog server.

Each case gets an error that names the input or the archive member, shows no server path and
no Python internals, and the server then trains a good request.
"""

import struct
import zipfile

import pytest
import torch
from safetensors.torch import save_file

from buildkit.cog_client import CogServer, data_uri, succeeded

GOOD = dict(
    instance_prompt="a photo of sks cat",
    class_prompt="a photo of a cat",
    resolution=64,
    max_train_steps=1,
    with_prior_preservation=False,
)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("server-errors")


@pytest.fixture(scope="module")
def server(work, tiny_sd15):
    env = {
        "BASE_MODEL_DIR": str(tiny_sd15),
        "TRAINER_WORK_DIR": str(work / "work"),
        "COG_TEST_LOG_DIR": str(work),
    }
    with CogServer("trainer", env=env) as running:
        yield running


def patched_zip(path, members, patches):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    data = bytearray(path.read_bytes())
    for header, offset, value in patches:
        at = data.find(header)
        while at >= 0:
            data[at + offset : at + offset + len(value)] = value
            at = data.find(header, at + 1)
    path.write_bytes(bytes(data))
    return path


def photos_with(tmp, name, members, patches=()):
    return data_uri(patched_zip(tmp / name, members, patches), "application/zip")


def safetensors_uri(tmp, tensors, cut=0):
    path = tmp / "model.safetensors"
    save_file(tensors, path)
    if cut:
        path.write_bytes(path.read_bytes()[:-cut])
    return data_uri(path, "application/octet-stream")


def case_inputs(case, tmp, photo_zip):
    jpeg = next(iter(zipfile.ZipFile(photo_zip).infolist()))
    cat = zipfile.ZipFile(photo_zip).read(jpeg)
    photos = data_uri(photo_zip, "application/zip")
    unet_key = "model.diffusion_model.input_blocks.0.0.weight"
    return {
        "encrypted zip": dict(
            instance_data=photos_with(
                tmp,
                "e.zip",
                {"cat.jpg": cat},
                [(b"PK\x03\x04", 6, b"\x01"), (b"PK\x01\x02", 8, b"\x01")],
            )
        ),
        "deflate64 zip": dict(
            instance_data=photos_with(
                tmp,
                "d.zip",
                {"cat.jpg": cat},
                [(b"PK\x03\x04", 8, b"\x09\x00"), (b"PK\x01\x02", 10, b"\x09\x00")],
            )
        ),
        "name too long": dict(instance_data=photos_with(tmp, "n.zip", {"x" * 5500 + ".jpg": cat})),
        "file and folder clash": dict(
            instance_data=photos_with(tmp, "c.zip", {"a": b"file", "a/b.jpg": cat})
        ),
        "bad base64": dict(instance_data="data:application/zip;base64,@@@@"),
        "server path": dict(instance_data="/etc/hostname"),
        "truncated ckpt_base": dict(
            instance_data=photos, ckpt_base=safetensors_uri(tmp, {unet_key: torch.zeros(999)}, 100)
        ),
        "wrong-keys ckpt_base": dict(
            instance_data=photos, ckpt_base=safetensors_uri(tmp, {"lora.weight": torch.zeros(9)})
        ),
        "photos as ckpt_base": dict(instance_data=photos, ckpt_base=photos),
        "huge header ckpt_base": dict(
            instance_data=photos,
            ckpt_base="data:application/octet-stream;base64,"
            + __import__("base64").b64encode(struct.pack("<Q", 2**40) + b"{}").decode(),
        ),
        "diverging learning rate": dict(
            instance_data=photos, learning_rate=1.0, max_train_steps=40, checkpointing_steps=0
        ),
    }[case]


EXPECTED = {
    "encrypted zip": "instance_data: cat.jpg is encrypted",
    "deflate64 zip": "instance_data: cannot unpack cat.jpg: it uses deflate64 compression",
    "name too long": "has a file or folder name of 5,504 bytes; at most 255",
    "file and folder clash": "a/b.jpg: a file and a folder in it have the same name",
    "bad base64": "is not an archive (it looks like an empty file: 0 bytes arrived",
    "server path": "instance_data: '/etc/hostname' is neither a URL nor an uploaded file",
    "truncated ckpt_base": "is truncated: its header describes 3,996 bytes of tensors",
    "wrong-keys ckpt_base": "is missing the UNet weights of an SD1.5 checkpoint",
    "photos as ckpt_base": "is a zip archive (photos?), not a model checkpoint",
    "huge header ckpt_base": "is not a .safetensors file",
    "diverging learning rate": "training diverged: the loss became NaN or infinite at step",
}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_a_bad_input_fails_clearly_and_the_server_trains_the_next_one(
    server, work, tmp_path, photo_zip, case
):
    status, body = server.predict(**{**GOOD, **case_inputs(case, tmp_path, photo_zip)})
    assert status == 200 and body["status"] == "failed", body
    error = body["error"]
    assert EXPECTED[case] in error, error
    for leak in ("/tmp", str(work), "Traceback", "Errno", "<", "object at"):
        assert leak not in error, (leak, error)
    succeeded(*server.predict(instance_data=data_uri(photo_zip, "application/zip"), **GOOD))


@pytest.mark.parametrize("mime", ["application/octet-stream", ""])
def test_ckpt_base_sent_as_a_data_uri_of_any_mime_trains(
    server, tmp_path, tiny_sd15, photo_zip, mime
):
    from diffusers import StableDiffusionPipeline

    from tests.trainer import ldm_checkpoint

    path = ldm_checkpoint.write(
        StableDiffusionPipeline.from_pretrained(tiny_sd15), tmp_path / "mine.safetensors"
    )
    uri = data_uri(path, "application/octet-stream").replace("application/octet-stream", mime, 1)
    status, body = server.predict(
        instance_data=data_uri(photo_zip, "application/zip"), ckpt_base=uri, **GOOD
    )
    succeeded(status, body)
