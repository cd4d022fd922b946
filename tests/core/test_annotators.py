import numpy as np
import pytest
from PIL import Image, ImageDraw

from buildkit.sample_photos import photo
from buildkit.tiny_annotators import write_annotator
from core.annotators import load_annotator
from core.controls import CONTROLS, AnnotatorKind, ControlType
from core.errors import UserError, WeightsMissingError

SIZE = dict(width=64, height=48)


@pytest.fixture(scope="session")
def annotator_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("annotators")
    return {c: write_annotator(c, root / c.value) for c in ControlType}


@pytest.fixture(scope="session")
def annotators(annotator_dirs):
    return {c: load_annotator(c, d, detect_resolution=128) for c, d in annotator_dirs.items()}


def pixels(image):
    return np.asarray(image, dtype=np.int16)


@pytest.mark.parametrize("control", list(ControlType))
def test_annotator_loads_through_from_pretrained_and_returns_the_requested_size(
    annotators, control
):
    out = annotators[control](photo("astronaut"), **SIZE)
    assert out.mode == "RGB" and out.size == (64, 48)
    again = annotators[control](photo("astronaut"), **SIZE)
    assert np.array_equal(pixels(out), pixels(again))  # deterministic


@pytest.mark.parametrize("control", [c for c in ControlType if c is not ControlType.OPENPOSE])
def test_control_image_depends_on_the_input(annotators, control):
    a = annotators[control](photo("astronaut"), **SIZE)
    b = annotators[control](photo("coffee"), **SIZE)
    assert pixels(a).std() > 0 and not np.array_equal(pixels(a), pixels(b))


def test_openpose_runs_its_body_network_on_the_image(annotators):
    detector = annotators[ControlType.OPENPOSE].model
    calls = []
    hook = detector.body_estimation.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        annotators[ControlType.OPENPOSE](photo("astronaut"), **SIZE)
    finally:
        hook.remove()
    assert calls  # random weights find no pose, but the real network ran on the photo


def test_higher_canny_thresholds_find_fewer_edges(annotators):
    canny = annotators[ControlType.CANNY]
    loose = canny(photo("astronaut"), low_threshold=20, high_threshold=50, **SIZE)
    strict = canny(photo("astronaut"), low_threshold=200, high_threshold=250, **SIZE)
    assert (pixels(strict) > 0).sum() < (pixels(loose) > 0).sum()


def test_canny_low_above_high_names_both_inputs(annotators):
    with pytest.raises(UserError, match=r"low_threshold \(200\) must not exceed high_threshold"):
        annotators[ControlType.CANNY](
            photo("astronaut"), low_threshold=200, high_threshold=100, **SIZE
        )


def test_canny_thresholds_outside_the_declared_bounds_are_named(annotators):
    with pytest.raises(UserError, match=r"high_threshold=300 must be from 1 to 255"):
        annotators[ControlType.CANNY](
            photo("astronaut"), low_threshold=100, high_threshold=300, **SIZE
        )


def test_scribbles_work_drawn_either_way_round(annotators):
    def drawing(ink, paper):
        image = Image.new("RGB", (64, 48), paper)
        ImageDraw.Draw(image).line([(5, 5), (60, 40)], fill=ink, width=3)
        return image

    dark_on_light = annotators[ControlType.SCRIBBLE](drawing("black", "white"), **SIZE)
    light_on_dark = annotators[ControlType.SCRIBBLE](drawing("white", "black"), **SIZE)
    assert np.array_equal(pixels(dark_on_light), pixels(light_on_dark))
    assert pixels(dark_on_light)[0, 0].tolist() == [0, 0, 0]  # background is black


def test_segmentation_colours_come_from_the_ade_palette(annotators):
    from controlnet_aux.util import ade_palette

    out = pixels(annotators[ControlType.SEG](photo("astronaut"), width=88, height=40))
    colours = {tuple(c) for c in out.reshape(-1, 3).tolist()}
    assert len(colours) > 1 and colours <= {tuple(c) for c in ade_palette()}


@pytest.mark.parametrize(
    "control",
    [
        c
        for c in ControlType
        if CONTROLS[c].annotator not in (AnnotatorKind.CANNY, AnnotatorKind.SCRIBBLE)
    ],
)
def test_missing_annotator_weights_name_the_file_and_the_fix(tmp_path, control):
    with pytest.raises(WeightsMissingError) as error:
        load_annotator(control, tmp_path)
    message = str(error.value)
    assert (
        str(tmp_path) in message
        and f"download-weights template controlnet-{control.value}" in message
    )
