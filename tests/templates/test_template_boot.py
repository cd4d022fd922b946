"""Weight-less boot, and the template-owned safety checker."""

import importlib

import numpy as np
import pytest

from buildkit.cog_client import succeeded
from core.controls import ControlType
from core.errors import WeightsMissingError
from core.pipelines import Engine
from core.requests import GenerationRequest
from core.weights import find
from templates.specs import TEMPLATES
from tests.templates.helpers import SMALL, serve


@pytest.mark.parametrize("name", ["vanilla", "controlnet-canny"])
def test_a_template_without_weights_boots_and_says_so(name, template_weights, tmp_path):
    with serve(name, None, template_weights(name), tmp_path) as server:
        assert server.health()["status"] == "READY"
        status, body = server.predict(prompt="a cat", **SMALL)
    assert status == 200 and body["status"] == "failed"
    assert "This is a template" in body["error"] and "/src/weights" in body["error"]


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_template_adapter_sets_up_without_any_weights(name, tmp_path, monkeypatch):
    """In-process, for all of them (the server test above covers two shapes end to end)."""
    for variable, value in {
        "TEMPLATE": name,
        "WEIGHTS_DIR": str(tmp_path / "none"),
        "TEMPLATE_WEIGHTS_DIR": str(tmp_path / "none"),
    }.items():
        monkeypatch.setenv(variable, value)
    path, class_name = TEMPLATES[name].cog_ref.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    runner = getattr(module, class_name)()
    runner.setup()
    assert runner.spec.name == name and runner.engine is None
    with pytest.raises(WeightsMissingError, match=r"This is a template.*/src/weights"):
        list(runner.generate({"prompt": "a cat", **SMALL}))


def test_a_controlnet_template_built_without_its_controlnet_says_what_to_run(tiny_sd15, tmp_path):
    with pytest.raises(WeightsMissingError, match="download-weights template controlnet-depth"):
        Engine.load(find(tiny_sd15), template_dir=tmp_path, control=ControlType.DEPTH)


def test_the_safety_checker_drops_flagged_images_and_can_be_disabled(
    trained_weights, template_weights, tmp_path
):
    strict = template_weights("vanilla", flag_everything=True)
    with serve("vanilla", trained_weights, strict, tmp_path) as server:
        status, body = server.predict(**SMALL, num_outputs=2, seed=1)
        assert status == 200 and body["status"] == "failed"
        assert "all 2 images were flagged by the safety checker" in body["error"]
        kept = succeeded(*server.predict(**SMALL, num_outputs=2, disable_safety_check=True))
        assert len(kept["output"]) == 2


def test_a_template_without_its_safety_checker_refuses_unless_disabled(trained_weights, tmp_path):
    empty = tmp_path / "template-weights"
    empty.mkdir()
    with serve("vanilla", trained_weights, empty, tmp_path) as server:
        status, body = server.predict(**SMALL)
        assert status == 200 and body["status"] == "failed"
        assert "safety checker is missing" in body["error"]
        succeeded(*server.predict(**SMALL, disable_safety_check=True))


class FlagOdd:
    def flags(self, images):  # stands in for the checker: flags every second image
        self.calls = getattr(self, "calls", 0)
        self.calls += len(images)
        return [(self.calls - len(images) + i + 1) % 2 == 0 for i in range(len(images))]


def test_only_flagged_images_are_dropped(trained_weights, template_weights, capsys):
    engine = Engine.load(find(trained_weights), template_dir=template_weights("vanilla"))
    engine.checker = FlagOdd()
    request = GenerationRequest(prompt="a cat", seed=10, num_outputs=4, **SMALL)
    kept = [np.asarray(image) for image in engine.generate(request)]
    assert len(kept) == 2
    assert "image 1 (seed 11) was flagged" in capsys.readouterr().out
