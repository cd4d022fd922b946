import subprocess

import pytest

from buildkit.build_template import build, dockerfile
from buildkit.cog_client import CogServer, succeeded
from buildkit.targets import from_cog_yaml
from templates.specs import TEMPLATES
from tests.templates.helpers import SMALL

REPO_SCRIPT = "script/build-template"


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_template_builds_a_complete_context(name, tmp_path, template_weights):
    out = build(name, tmp_path / "ctx", None, template_weights(name))
    target = from_cog_yaml(out / "cog.yaml")
    assert target.name == name and target.run == TEMPLATES[name].cog_ref
    assert target.environment["WEIGHTS_DIR"] == "/src/weights"
    for path in (
        "core/pipelines.py",
        "templates/predict.py",
        "requirements/cog.txt",
        ".cog/openapi_schema.json",
        "template-weights/safety-checker/config.json",
    ):
        assert (out / path).is_file(), path
    if TEMPLATES[name].control is not None:
        assert (out / "template-weights/controlnet/config.json").is_file()
    assert not (out / "weights").exists()  # a template is weight-less until the build step
    assert not list(out.rglob("__pycache__"))


def test_a_context_with_the_trainers_weights_serves_on_its_own(
    tmp_path, trained_weights, template_weights
):
    out = build("vanilla", tmp_path / "ctx", trained_weights, template_weights("vanilla"))
    assert (out / "weights" / "manifest.json").is_file()
    env = {"COG_TEST_LOG_DIR": str(tmp_path), "WEIGHTS_DIR": "/nowhere"}  # cog.yaml's wins
    with CogServer("vanilla", env=env, context=out) as server:
        body = succeeded(*server.predict(**SMALL, seed=2))
    assert len(body["output"]) == 1


def test_missing_template_weights_are_explained(tmp_path):
    with pytest.raises(SystemExit, match="download-weights template controlnet-depth"):
        build("controlnet-depth", tmp_path / "ctx", None, tmp_path / "none")


def test_dockerfile_is_the_dreambooth_build_step():
    result = subprocess.run(
        [REPO_SCRIPT, "--dockerfile", "controlnet-openpose", "r8.im/me/pose-template@sha256:abc"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "FROM r8.im/me/pose-template@sha256:abc\nCOPY weights /src/weights\n"
    assert result.stdout == dockerfile("r8.im/me/pose-template@sha256:abc")
