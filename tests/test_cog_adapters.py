"""Every Cog adapter stays readable by `cog build`'s static schema parser.

cog's Go parser (pkg/schema/python/) resolves an `Input()` default written as `Inputs.x` only
when `Inputs` is in the same file, reads `choices=` only from a literal list or a same-file
literal constant, and reads a `description=` only from one plain string literal (implicit
concatenation comes out garbled). Anything else fails the build or silently loses metadata.
"""

import ast
from pathlib import Path

import pytest

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
