"""Every Cog adapter stays readable by `cog build`'s static schema parser, and is rendered.

cog's Go parser (pkg/schema/python/) resolves an `Input()` default written as `Inputs.x` only
when `Inputs` is in the same file, reads `choices=` only from a literal list or a same-file
literal constant, and reads a `description=` only from one plain string literal (implicit
concatenation comes out garbled). Anything else fails the build or silently loses metadata.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from buildkit.cog_adapters import (
    REQUIRED,
    AdapterClass,
    Choices,
    InputSpec,
    Module,
    Signature,
    is_current,
    render,
    write,
)
from buildkit.schema import load_info
from core.schedulers import SCHEDULERS
from templates import predict as template_adapters

REPO = Path(__file__).resolve().parent.parent
ADAPTERS = ["trainer/predict.py", "templates/predict.py"]


def tree(path: str) -> ast.Module:
    return ast.parse((REPO / path).read_text())


def input_calls(module: ast.Module):
    for node in ast.walk(module):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Input":
            yield node


@pytest.mark.parametrize("path", ADAPTERS)
def test_input_metadata_is_made_of_literals_or_same_file_constants(path):
    module = tree(path)
    constants = {
        t.id
        for n in module.body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name) and isinstance(n.value, (ast.List, ast.Constant))
    }
    for call in input_calls(module):
        for keyword in call.keywords:
            value = keyword.value
            if keyword.arg == "choices":
                assert isinstance(value, ast.List) or getattr(value, "id", None) in constants
            elif keyword.arg == "description":
                segment = ast.get_source_segment((REPO / path).read_text(), value)
                assert isinstance(value, ast.Constant) and segment.count('"') == 2, segment[:60]
            else:
                assert isinstance(value, (ast.Constant, ast.UnaryOp)), keyword.arg


@pytest.mark.parametrize("path", ADAPTERS)
def test_every_parameter_default_refers_to_this_files_inputs_class(path):
    module = tree(path)
    classes = {n.name for n in module.body if isinstance(n, ast.ClassDef)}
    functions = [
        n for n in ast.walk(module) if isinstance(n, ast.FunctionDef) and n.name in ("run", "train")
    ]
    assert functions
    for function in functions:
        for default in function.args.defaults:
            assert isinstance(default, ast.Attribute) and default.value.id in classes


def test_scheduler_choices_are_the_registry():
    assert list(SCHEDULERS) == template_adapters.SCHEDULER_CHOICES


def test_scheduler_choices_are_rendered_from_the_registry():
    from templates.inputs import INPUTS

    (scheduler,) = [spec for spec in INPUTS if spec.name == "scheduler"]
    assert scheduler.choices.values == tuple(SCHEDULERS)


def test_the_checked_in_template_adapters_are_the_rendered_declaration():
    from buildkit.cog_adapters import is_current
    from templates import inputs, sdxl_inputs

    for declaration, rendered in ((inputs, "predict.py"), (sdxl_inputs, "sdxl_predict.py")):
        current = is_current(declaration.adapters(), REPO / "templates" / rendered)
        assert current, f"stale; run {declaration.RENDER}"


def test_the_sdxl_template_keeps_cog_sdxls_inputs_and_defaults():
    from templates.sdxl_inputs import adapters

    specs = adapters().specs
    expected = {
        "width": 1024,
        "height": 1024,
        "scheduler": "K_EULER",
        "num_inference_steps": 50,
        "guidance_scale": 7.5,
        "prompt_strength": 0.8,
        "refine": "no_refiner",
        "high_noise_frac": 0.8,
        "refine_steps": None,
        "apply_watermark": True,
        "lora_scale": 0.6,
        "replicate_weights": None,
        "disable_safety_checker": False,
    }
    assert {name: specs[name].default for name in expected} == expected
    assert specs["refine"].choices.values == (
        "no_refiner",
        "expert_ensemble_refiner",
        "base_image_refiner",
    )
    assert specs["guidance_scale"].le == 50


def test_the_checked_in_trainer_adapter_is_rendered_from_the_config():
    from buildkit.cog_adapters import is_current
    from trainer.inputs import RENDER, adapters

    assert is_current(adapters(), REPO / "trainer" / "predict.py"), f"stale; run {RENDER}"


@pytest.mark.parametrize("entry", ["trainer/predict.py:Predictor", "trainer/predict.py:train"])
def test_cog_reads_every_trainer_input_exactly_as_the_config_declares_it(entry):
    from trainer.config import TrainConfig
    from trainer.inputs import specs

    declared = {spec.name: spec for spec in specs()}
    fields = load_info(entry, REPO).inputs
    order = [f.name for f in sorted(fields.values(), key=lambda f: f.order)]
    assert order == TrainConfig.field_names()
    for name, field in fields.items():
        read, spec = _as_cog_reads_it(field), _as_declared(declared[name])
        if spec["default"] is REQUIRED:
            spec["default"] = None  # cog reports a required input's default as None
        assert read == spec, name


def test_a_value_the_schema_refuses_the_config_refuses_too(tmp_path):
    from trainer.config import ConfigError, TrainConfig
    from trainer.inputs import specs

    photos = tmp_path / "p.zip"
    photos.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    base = dict(instance_prompt="a sks dog", class_prompt="a dog", instance_data=photos)
    for spec in specs():
        if spec.le is None or spec.type not in (int, float):
            continue
        above = spec.le + 1
        with pytest.raises(ConfigError, match=rf"{spec.name}={above!r} is not allowed"):
            TrainConfig(**base, **{spec.name: spec.type(above)})


def _as_cog_reads_it(field) -> dict:
    return {
        "default": field.default,
        "ge": field.ge,
        "le": field.le,
        "max_length": field.max_length,
        "choices": tuple(field.choices) if field.choices else None,
        "description": field.description,
        "nullable": field.type.repetition.name == "OPTIONAL",
    }


def _as_declared(spec) -> dict:
    return {
        "default": spec.default,
        "ge": spec.ge,
        "le": spec.le,
        "max_length": spec.max_length,
        "choices": spec.choices.values if spec.choices else None,
        "description": spec.description,
        "nullable": spec.nullable,
    }


@pytest.mark.parametrize("adapter", ["Vanilla", "ControlNet", "Canny"])
def test_cog_reads_each_adapter_input_exactly_as_declared(adapter):
    from templates.inputs import ADAPTERS, INPUTS

    specs = {spec.name: spec for spec in INPUTS}
    fields = load_info(f"templates/predict.py:{adapter}", REPO).inputs
    _, names = ADAPTERS[adapter]
    assert [f.name for f in sorted(fields.values(), key=lambda f: f.order)] == list(names)
    for name in names:
        assert _as_cog_reads_it(fields[name]) == _as_declared(specs[name]), name


def test_the_size_bound_in_the_schema_is_the_one_requests_are_checked_against():
    from core import requests
    from core.errors import UserError
    from templates.inputs import INPUTS

    (width,) = [spec for spec in INPUTS if spec.name == "width"]
    assert (width.ge, width.le) == (requests.SIZE.low, requests.SIZE.high) == (64, 1024)
    with pytest.raises(UserError, match="width=1032 must be a multiple of 8 from 64 to 1024"):
        requests.GenerationRequest(prompt="a cat", width=1032)


# The generic renderer (buildkit/cog_adapters.py), on a trainer-shaped declaration.

PRECISIONS = Choices("PRECISIONS", ("auto", "no", "fp16"))
SPECS = [
    InputSpec("instance_prompt", str, "The prompt with the identifier."),
    InputSpec("photos", Path, "A zip of photos."),
    InputSpec("class_data", Path, "Optional class images.", default=None, nullable=True),
    InputSpec("steps", int, "Optimizer steps.", default=800, ge=0, le=100000),
    InputSpec("learning_rate", float, "Learning rate.", default=1e-6, ge=0.0, le=1.0),
    InputSpec("offset", float, "Offset.", default=-0.5, ge=-1.0, le=1.0),
    InputSpec("hflip", bool, "Mirror photos.", default=False),
    InputSpec("mixed_precision", str, "Precision.", default="auto", choices=PRECISIONS),
]
NAMES = tuple(spec.name for spec in SPECS)
BODY = 'inputs = dict(locals())\ndel inputs["self"]\nreturn Path(str(inputs))'


def trainer_shaped_module() -> Module:
    """What the trainer's adapter looks like: a runner class with a hand-written setup, a
    verbatim BaseModel output, and a module-level train function over the same inputs."""
    return Module(
        docstring="A trainer-shaped adapter.",
        imports=["from cog import BaseModel, BaseRunner, Input, Path"],
        inputs=SPECS,
        parts=[
            AdapterClass(
                "Predictor",
                ("BaseRunner",),
                Signature("run", NAMES, "Path", BODY),
                members="def setup(self) -> None:\n    self.ready = True",
            ),
            "class TrainingOutput(BaseModel):\n    weights: Path",
            Signature(
                "train",
                NAMES,
                "TrainingOutput",
                "return TrainingOutput(weights=Path(str(dict(locals()))))",
                docstring="The same training, for train: in cog.yaml.",
                method=False,
            ),
        ],
        source="tests/test_cog_adapters.py",
        command="(in a test)",
    )


@pytest.fixture
def rendered(tmp_path) -> Path:
    return write(trainer_shaped_module(), tmp_path / "adapter.py")


@pytest.mark.parametrize("ref", ["adapter.py:Predictor", "adapter.py:train"])
def test_cog_reads_every_rendered_input_as_declared(rendered, ref):
    fields = load_info(ref, rendered.parent).inputs
    assert [f.name for f in sorted(fields.values(), key=lambda f: f.order)] == list(NAMES)
    for spec in SPECS:
        field = fields[spec.name]
        assert field.default == (None if spec.default is REQUIRED else spec.default), spec.name
        assert (field.ge, field.le) == (spec.ge, spec.le), spec.name
        assert field.description == spec.description
        assert (field.type.repetition.name == "OPTIONAL") == spec.nullable, spec.name
    assert list(fields["mixed_precision"].choices) == list(PRECISIONS.values)


def test_rendered_files_are_stable_under_ruff_and_detected_when_stale(rendered):
    ruff = Path(sys.executable).parent / "ruff"
    check = subprocess.run(
        [str(ruff), "format", "--check", "--diff", str(rendered)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert is_current(trainer_shaped_module(), rendered)
    rendered.write_text(rendered.read_text().replace("le=100000", "le=1000"))
    assert not is_current(trainer_shaped_module(), rendered)


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (dict(default=None), "default=None needs nullable=True"),
        (dict(default=1, description='say "hi"'), "description must be one line"),
        (dict(default=5, ge=10, le=1), "ge=10 is above le=1"),
        (dict(default="8"), "default '8' is not a int"),
        (dict(default=True), "default True is not a int"),
    ],
)
def test_a_spec_cog_could_not_read_is_refused_when_declared(arguments, fragment):
    arguments = {"description": "Steps.", **arguments}
    with pytest.raises(ValueError, match=fragment):
        InputSpec("steps", int, **arguments)


def test_choices_must_hold_the_default_and_signatures_only_declared_inputs():
    with pytest.raises(ValueError, match="not among its choices"):
        InputSpec("mixed_precision", str, "Precision.", default="fp8", choices=PRECISIONS)
    with pytest.raises(ValueError, match=r"uses undeclared inputs: \['stepz'\]"):
        Module("x", [], SPECS, [Signature("train", ("stepz",), "Path", "pass", method=False)])


def test_the_command_line_checks_and_writes(tmp_path):
    ref = "tests.test_cog_adapters:trainer_shaped_module"
    path = tmp_path / "adapter.py"
    command = [sys.executable, "-m", "buildkit.cog_adapters", ref, str(path)]
    stale = subprocess.run([*command, "--check"], capture_output=True, text=True)
    assert stale.returncode == 1 and "is stale; run:" in stale.stderr
    subprocess.run(command, check=True, capture_output=True)
    assert path.read_text() == render(trainer_shaped_module())
    assert subprocess.run([*command, "--check"]).returncode == 0
