import pytest
import torch
from PIL import Image

from core.errors import UserError
from core.prompts import PromptEncoder
from core.requests import GenerationRequest, Mode


@pytest.fixture(scope="module")
def encoder(tiny_sd15):
    from transformers import CLIPTextModel, CLIPTokenizer

    return PromptEncoder(
        CLIPTokenizer.from_pretrained(tiny_sd15, subfolder="tokenizer"),
        CLIPTextModel.from_pretrained(tiny_sd15, subfolder="text_encoder"),
    )


def test_compel_weighting_changes_the_embedding(encoder):
    plain, _ = encoder("a photo of a cat", None)
    weighted, _ = encoder("a photo of a (cat)1.5", None)
    down, _ = encoder("a photo of a (cat)0.5", None)
    assert plain.shape == weighted.shape
    assert not torch.allclose(plain, weighted) and not torch.allclose(weighted, down)


def test_long_prompts_are_chunked_not_cut_and_match_the_negative(encoder):
    long = ", ".join(["a very detailed photo of a cat"] * 20)  # far beyond 77 tokens
    positive, negative = encoder(long, "blurry")
    assert positive.shape[1] > 77 and positive.shape == negative.shape


def image(size=(64, 64)):
    return Image.new("RGB", size)


@pytest.mark.parametrize(
    ("extra", "mode"),
    [
        ({}, Mode.TXT2IMG),
        ({"image": image()}, Mode.IMG2IMG),
        ({"image": image(), "mask": Image.new("L", (64, 64))}, Mode.INPAINT),
        ({"control_image": image()}, Mode.CONTROLNET),
        ({"control_image": image(), "image": image()}, Mode.CONTROLNET_IMG2IMG),
        (
            {"control_image": image(), "image": image(), "mask": Image.new("L", (64, 64))},
            Mode.CONTROLNET_INPAINT,
        ),
    ],
)
def test_the_images_given_choose_the_mode(extra, mode):
    assert GenerationRequest(prompt="a cat", **extra).mode is mode


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("width", 100, "width=100 must be a multiple of 8"),
        ("prompt", "x" * 10_000, "prompt has 10000 characters"),
        ("scheduler", "K_WARP", "scheduler='K_WARP' is not one of DDIM"),
    ],
)
def test_bad_requests_name_the_input(field, value, fragment):
    values = {"prompt": "a cat", field: value}
    with pytest.raises(UserError, match=None) as error:
        GenerationRequest(**values)
    assert fragment in str(error.value)
