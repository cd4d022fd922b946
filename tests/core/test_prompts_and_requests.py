import logging
import time

import pytest
import torch
from PIL import Image

from core.errors import UserError
from core.prompts import MAX_NESTING, MAX_WEIGHTED_CHARS, PromptEncoder, nesting_depth, plain
from core.requests import GenerationRequest, Mode, at_least_one_step


@pytest.fixture(scope="module")
def encoder(tiny_sd15):
    from transformers import CLIPTextModel, CLIPTokenizer

    return PromptEncoder(
        CLIPTokenizer.from_pretrained(tiny_sd15, subfolder="tokenizer"),
        CLIPTextModel.from_pretrained(tiny_sd15, subfolder="text_encoder"),
    )


def test_compel_weighting_changes_the_embedding(encoder):
    plain_embedding = encoder("a photo of a cat", None).positive
    weighted = encoder("a photo of a (cat)1.5", None).positive
    down = encoder("a photo of a (cat)0.5", None).positive
    assert plain_embedding.shape == weighted.shape
    assert not torch.allclose(plain_embedding, weighted)
    assert not torch.allclose(weighted, down)


def test_long_prompts_are_chunked_not_cut_and_match_the_negative(encoder):
    long = ", ".join(["a very detailed photo of a cat"] * 20)  # far beyond 77 tokens
    embeddings = encoder(long, "blurry")
    positive, negative = embeddings.positive, embeddings.negative
    assert positive.shape[1] > 77 and positive.shape == negative.shape


@pytest.mark.parametrize(
    "prompt", ["a photo of a cat", "a  cat,dog.  on the moon", "élan café 日本", "", "x" * 1500]
)
def test_prompts_without_syntax_skip_the_parser_and_encode_as_compel_would(encoder, prompt):
    assert repr(encoder.parse(prompt)) == repr(encoder.parser.parse_conjunction(prompt))
    assert torch.equal(encoder.encode(prompt, "prompt"), encoder.compel(prompt))


@pytest.mark.parametrize(
    "prompt",
    [
        "(" * (MAX_NESTING + 1),
        "(" * 2000,
        "((((((((cat))))))))",
        "a (red)++ cat, " * (MAX_WEIGHTED_CHARS // 15 + 1),
    ],
)
def test_nested_or_long_weighted_prompts_are_plain_text_at_once_with_a_log_line(
    encoder, prompt, caplog
):
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="core.prompts"):
        embedding = encoder.encode(prompt, "prompt")
    assert time.monotonic() - started < 5  # compel took 35 s for "((((((((" and 162 s for nine
    assert "prompt is used as plain text" in caplog.text
    literal = encoder.compel.build_conditioning_tensor_for_conjunction(plain(prompt))[0]
    assert torch.equal(embedding, literal)


def test_weighted_prompts_within_the_bounds_are_parsed(encoder, caplog):
    prompt = "(" * MAX_NESTING + "a cat" + ")" * MAX_NESTING + "1.3, a (red)++ hat"
    with caplog.at_level(logging.WARNING, logger="core.prompts"):
        weighted = encoder.encode(prompt, "prompt")
    literal = encoder.compel.build_conditioning_tensor_for_conjunction(plain(prompt))[0]
    assert caplog.text == "" and weighted.shape == literal.shape
    assert not torch.allclose(weighted, literal)


def test_nesting_depth_counts_unclosed_parentheses():
    assert [nesting_depth(t) for t in ["a", "(a)", "((a) (b))", "(((", "))((", "(a))(b"]] == [
        0,
        1,
        2,
        3,
        2,
        1,
    ]


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
        ("width", 100, "width=100 must be a multiple of 8 from 64 to 1024"),
        ("height", 2048, "height=2048 must be a multiple of 8 from 64 to 1024"),
        ("prompt", "x" * 10_000, "prompt has 10000 characters"),
        ("scheduler", "K_WARP", "scheduler='K_WARP' is not one of DDIM"),
        ("num_outputs", 11, "num_outputs=11 must be from 1 to 10"),
        ("prompt_strength", 1.5, "prompt_strength=1.5 must be from 0.0 to 1.0"),
        ("num_inference_steps", 0, "num_inference_steps=0 must be from 1 to 500"),
    ],
)
def test_bad_requests_name_the_input_and_the_bounds(field, value, fragment):
    values = {"prompt": "a cat", field: value}
    with pytest.raises(UserError) as error:
        GenerationRequest(**values)
    assert fragment in str(error.value)


@pytest.mark.parametrize("steps", [1, 2, 3, 7, 10, 49, 50, 97, 500])
@pytest.mark.parametrize("strength", [0.0, 0.001, 0.05, 0.3])
def test_the_denoising_strength_always_gives_at_least_one_step(strength, steps):
    effective = at_least_one_step(strength, steps)
    assert int(steps * effective) >= 1  # what diffusers' get_timesteps computes
    assert effective >= strength and effective <= max(strength, 1 / steps + 1e-9)
    assert at_least_one_step(0.8, 50) == 0.8


def test_recent_prompts_are_encoded_once_and_their_log_line_repeats(encoder, caplog):
    from core.prompts import CACHED_PROMPTS

    nested = "(" * (MAX_NESTING + 2) + "a cached cat"
    with caplog.at_level(logging.WARNING, logger="core.prompts"):
        first = encoder.encode(nested, "prompt")
        again = encoder.encode(nested, "prompt")
    assert again is first and caplog.text.count("is used as plain text") == 2
    for index in range(CACHED_PROMPTS + 3):
        encoder.encode(f"a cat number {index}", "prompt")
    assert len(encoder.cache) == CACHED_PROMPTS and ((), nested) not in encoder.cache
