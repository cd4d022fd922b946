"""Cog adapter files rendered from typed input declarations, as cog.yaml is rendered.

`cog build` reads a Cog file statically (a tree-sitter parser, not Python): an `Input()` must be
written in the same file as the signature that uses it, with literal bounds, `choices=` a list
literal or a same-file constant, and `description=` one plain string literal. So the adapter
cannot import its inputs. Instead the inputs are declared once, typed (`InputSpec`), and the
adapter file is rendered from that declaration and checked in; a test compares the checked-in
file with `render()` so it cannot drift.

    specs = [InputSpec("width", int, "Width in pixels.", default=512, ge=64, le=1024), ...]
    module = Module(
        docstring="Cog adapter ...",
        imports=["from cog import BaseRunner, Input, Path"],
        inputs=specs,
        parts=[AdapterClass("Vanilla", ("TemplateRunner", "BaseRunner"), run=Signature(...))],
    )
    source = render(module)                     # the whole file, ruff-formatted by construction
    write(module, Path("templates/predict.py"))  # or is_current(module, path) in a test

`python -m buildkit.cog_adapters PACKAGE.MODULE:FUNCTION PATH [--check]` renders the `Module`
that FUNCTION returns into PATH (or exits 1 when PATH is stale).
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

INDENT = "    "
TYPES = {str: "str", int: "int", float: "float", bool: "bool", pathlib.Path: "Path"}
REQUIRED = object()  # the default of an input that has none
GENERATED = (
    "# Rendered by buildkit/cog_adapters.py from {source}; edit there, then run:\n# {command}"
)


@dataclass(frozen=True)
class Choices:
    """Allowed values, rendered as a module-level list constant named `name`."""

    name: str
    values: tuple

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or not self.name.isupper():
            raise ValueError(f"Choices name {self.name!r} must be an UPPER_CASE identifier")
        if not self.values:
            raise ValueError(f"Choices {self.name} is empty")


@dataclass(frozen=True)
class InputSpec:
    """One Cog input: its type, description, default and bounds.

    `type` is str, int, float, bool or pathlib.Path (rendered as cog's Path). `nullable` renders
    `T | None`; an input with `default=None` must be nullable (cog's static parser would
    otherwise treat it as required).
    """

    name: str
    type: type
    description: str
    default: object = REQUIRED
    nullable: bool = False
    ge: float | None = None
    le: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    regex: str | None = None
    choices: Choices | None = None

    def __post_init__(self) -> None:
        where = f"input {self.name!r}"
        if not self.name.isidentifier():
            raise ValueError(f"{where}: not a Python identifier")
        if self.type not in TYPES:
            raise ValueError(f"{where}: type must be one of {', '.join(TYPES.values())}")
        if not self.description or any(c in self.description for c in '"\\\n'):
            raise ValueError(f"{where}: description must be one line without quotes or '\\'")
        if self.default is None and not self.nullable:
            raise ValueError(f"{where}: default=None needs nullable=True")
        if self.ge is not None and self.le is not None and self.ge > self.le:
            raise ValueError(f"{where}: ge={self.ge} is above le={self.le}")
        if self.choices and self.default not in (REQUIRED, None, *self.choices.values):
            raise ValueError(f"{where}: default {self.default!r} is not among its choices")
        self._check_default_type(where)

    def _check_default_type(self, where: str) -> None:
        if self.default in (REQUIRED, None) or self.type is pathlib.Path:
            return
        expected = (int, float) if self.type is float else (self.type,)
        if isinstance(self.default, bool) and self.type is not bool:
            expected = ()
        if not isinstance(self.default, expected):
            raise ValueError(f"{where}: default {self.default!r} is not a {TYPES[self.type]}")

    @property
    def annotation(self) -> str:
        return TYPES[self.type] + (" | None" if self.nullable else "")

    def keywords(self) -> list[tuple[str, str]]:
        """The Input() keyword arguments, as (name, source) pairs, in a fixed order."""
        pairs = [] if self.default is REQUIRED else [("default", _literal(self.default))]
        for name in ("ge", "le", "min_length", "max_length", "regex"):
            value = getattr(self, name)
            if value is not None:
                pairs.append((name, _literal(value)))
        if self.choices:
            pairs.append(("choices", self.choices.name))
        pairs.append(("description", f'"{self.description}"'))
        return pairs


@dataclass(frozen=True)
class Signature:
    """A `run`/`predict`/`train` function over declared inputs; `body` is its source, unindented.

    `method=True` adds `self` (a method of an AdapterClass); decorators are written without `@`.
    """

    name: str
    inputs: tuple[str, ...]
    returns: str
    body: str
    decorators: tuple[str, ...] = ()
    docstring: str | None = None
    method: bool = True


@dataclass(frozen=True)
class AdapterClass:
    """A runner class: `attributes` (source lines such as 'default_template = "vanilla"'), any
    hand-written `members` source (e.g. a setup method, unindented), then `run`."""

    name: str
    bases: tuple[str, ...]
    run: Signature
    attributes: tuple[str, ...] = ()
    members: str = ""


@dataclass(frozen=True)
class Module:
    """A whole adapter file. `parts` are AdapterClass, Signature (a module-level function) or
    verbatim source strings, in file order, after the `Inputs` class."""

    docstring: str
    imports: Sequence[str]
    inputs: Sequence[InputSpec]
    parts: Sequence[AdapterClass | Signature | str] = ()
    source: str = ""  # where the declaration lives, for the header comment
    command: str = ""  # how to re-render, for the header comment
    inputs_class: str = "Inputs"
    specs: dict[str, InputSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        specs = {spec.name: spec for spec in self.inputs}
        if len(specs) != len(self.inputs):
            raise ValueError("input names must be unique")
        for part in self.parts:
            signature = part.run if isinstance(part, AdapterClass) else part
            if isinstance(signature, Signature):
                unknown = [n for n in signature.inputs if n not in specs]
                if unknown:
                    raise ValueError(f"{signature.name} uses undeclared inputs: {unknown}")
        object.__setattr__(self, "specs", specs)


def _literal(value: object) -> str:
    if value is None:
        return "None"
    if isinstance(value, str):
        if '"' in value or "\\" in value:
            raise ValueError(f"string literal {value!r} must not contain quotes or backslashes")
        return f'"{value}"'
    if isinstance(value, (bool, int, float)):
        return repr(value)
    raise ValueError(f"{value!r} cannot be rendered as a literal")


def _indent(source: str, level: int) -> list[str]:
    prefix = INDENT * level
    return [prefix + line if line.strip() else "" for line in source.strip("\n").splitlines()]


def _constants(module: Module) -> list[str]:
    seen: dict[str, Choices] = {}
    for spec in module.inputs:
        if spec.choices and seen.setdefault(spec.choices.name, spec.choices) != spec.choices:
            raise ValueError(f"two different Choices are named {spec.choices.name}")
    lines = []
    for choices in seen.values():
        lines += ["", f"{choices.name} = ["]
        lines += [f"{INDENT}{_literal(v)}," for v in choices.values]
        lines += ["]"]
    return lines


def _inputs_class(module: Module) -> list[str]:
    lines = [f"class {module.inputs_class}:"]
    for spec in module.inputs:
        lines.append(f"{INDENT}{spec.name} = Input(")
        lines += [f"{INDENT * 2}{k}={v}," for k, v in spec.keywords()]
        lines.append(f"{INDENT})")
    return lines


def _function(module: Module, signature: Signature, level: int) -> list[str]:
    pad = INDENT * level
    lines = [f"{pad}@{decorator}" for decorator in signature.decorators]
    lines.append(f"{pad}def {signature.name}(")
    if signature.method:
        lines.append(f"{pad}{INDENT}self,")
    for name in signature.inputs:
        spec = module.specs[name]
        lines.append(f"{pad}{INDENT}{name}: {spec.annotation} = {module.inputs_class}.{name},")
    lines.append(f"{pad}) -> {signature.returns}:")
    if signature.docstring:
        lines.append(f'{pad}{INDENT}"""{signature.docstring}"""')
    return lines + _indent(signature.body, level + 1)


def _adapter_class(module: Module, adapter: AdapterClass) -> list[str]:
    lines = [f"class {adapter.name}({', '.join(adapter.bases)}):"]
    lines += [INDENT + attribute for attribute in adapter.attributes]
    if adapter.members:
        lines += [*([""] if adapter.attributes else []), *_indent(adapter.members, 1)]
    if adapter.attributes or adapter.members:
        lines.append("")
    return lines + _function(module, adapter.run, 1)


def render(module: Module) -> str:
    """The adapter file's source; stable under `ruff format` (exploded calls, trailing commas)."""
    docstring = module.docstring.strip()
    lines = [f'"""{docstring}\n"""' if "\n" in docstring else f'"""{docstring}"""', ""]
    if module.source:
        command = module.command or "python -m buildkit.cog_adapters ..."
        lines += [GENERATED.format(source=module.source, command=command), ""]
    lines += [*module.imports, *_constants(module), "", "", *_inputs_class(module)]
    for part in module.parts:
        lines += ["", ""]
        if isinstance(part, AdapterClass):
            lines += _adapter_class(module, part)
        elif isinstance(part, Signature):
            lines += _function(module, part, 0)
        else:
            lines += _indent(part, 0)
    return "\n".join(lines).rstrip("\n") + "\n"


def write(module: Module, path: pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(path)
    path.write_text(render(module))
    return path


def is_current(module: Module, path: pathlib.Path) -> bool:
    """True when the checked-in file at `path` is exactly what `module` renders."""
    path = pathlib.Path(path)
    return path.is_file() and path.read_text() == render(module)


def load(ref: str) -> Module:
    """`package.module:function` -> the Module that function returns."""
    module_name, _, function = ref.partition(":")
    return getattr(importlib.import_module(module_name), function)()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("declaration", help="package.module:function returning a Module")
    parser.add_argument("path", type=pathlib.Path, help="the adapter file to write")
    parser.add_argument("--check", action="store_true", help="exit 1 if PATH is not current")
    args = parser.parse_args(argv)
    module = load(args.declaration)
    if args.check:
        if not is_current(module, args.path):
            command = f"python -m buildkit.cog_adapters {args.declaration} {args.path}"
            sys.exit(f"{args.path} is stale; run: {command}")
        return
    write(module, args.path)
    print(f"wrote {args.path}")


if __name__ == "__main__":  # the declarations import this module by name: use that copy
    importlib.import_module("buildkit.cog_adapters").main()
