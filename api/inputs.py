"""A training's `input`, checked against the trainer version's own schema before anything runs.

coglet strips unknown input fields silently, so this API is where a typo gets caught: unknown
fields get a 422 naming the closest valid name. Types, bounds and choices are checked with
jsonschema against the `Input` schema that was pushed with the version. File inputs must be an
http(s) URL (fetched later, SSRF-safe) or a data: URI; a server-local path is refused, because
the trainer's server would read that file from its own disk.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import re
from dataclasses import dataclass, field

import jsonschema

from api.safe_fetch import URLRefusedError, check

DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[\w-]+=[^;,]*)*;base64,", re.I)


@dataclass
class Checked:
    errors: list[dict] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # field -> URL or data URI

    def add(self, name: str, message: str, kind: str = "value_error") -> None:
        self.errors.append({"loc": ["body", "input", name], "msg": message, "type": kind})


def input_schema(openapi: dict) -> dict:
    return openapi["components"]["schemas"]["Input"]


def file_fields(openapi: dict) -> set[str]:
    properties = input_schema(openapi).get("properties", {})
    return {name for name, prop in properties.items() if prop.get("format") == "uri"}


def _unknown(checked: Checked, values: dict, properties: dict) -> None:
    for name in values:
        if name in properties:
            continue
        close = difflib.get_close_matches(name, list(properties), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        checked.add(name, f"unknown input {name!r} for this trainer version{hint}", "extra")


def _file(checked: Checked, name: str, value, allow_private: bool) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        checked.add(name, "expected a file: an https URL or a data: URI")
        return
    if DATA_URI.match(value):
        try:
            base64.b64decode(value.partition(",")[2], validate=True)
        except (binascii.Error, ValueError):
            checked.add(name, "the data: URI's base64 payload does not decode")
            return
        checked.files[name] = value
        return
    if value.startswith(("http://", "https://")):
        try:
            check(value, f"input.{name}", allow_private, connect=False)
        except URLRefusedError as error:
            checked.add(name, str(error).removeprefix(f"input.{name}: "))
            return
        checked.files[name] = value
        return
    checked.add(
        name,
        "a file input must be an https URL or a data: URI (the file's bytes); server-local "
        "paths and other schemes are refused",
    )


def _schema_errors(checked: Checked, values: dict, openapi: dict, files: set[str]) -> None:
    schema = dict(input_schema(openapi))
    schema["components"] = openapi["components"]
    properties = schema.get("properties", {})
    instance = {
        k: v
        for k, v in values.items()
        if k in properties and k not in files and not (v is None and properties[k].get("nullable"))
    }
    schema["required"] = [r for r in schema.get("required", []) if r not in files]
    for error in jsonschema.Draft7Validator(schema).iter_errors(instance):
        if error.validator == "required":
            missing = error.message.split("'")[1]
            checked.add(missing, "field required", "value_error.missing")
        else:
            name = str(error.absolute_path[0]) if error.absolute_path else "input"
            checked.add(name, error.message)


def validate(values, openapi: dict, allow_private: bool) -> Checked:
    checked = Checked()
    if not isinstance(values, dict):
        checked.errors.append(
            {"loc": ["body", "input"], "msg": "expected an object", "type": "type_error"}
        )
        return checked
    properties = input_schema(openapi).get("properties", {})
    _unknown(checked, values, properties)
    files = file_fields(openapi)
    for name in sorted(files):
        if name in values:
            _file(checked, name, values[name], allow_private)
        elif name in input_schema(openapi).get("required", []):
            checked.add(name, "field required", "value_error.missing")
    _schema_errors(checked, values, openapi, files)
    return checked


def summarised(values: dict) -> dict:
    """The input as stored and shown: data URIs reduced to their type and size."""
    out = {}
    for name, value in values.items():
        if isinstance(value, str) and DATA_URI.match(value):
            header, _, payload = value.partition(",")
            size = len(payload) * 3 // 4 - payload[-2:].count("=")
            out[name] = f"{header},… ({size} bytes)"
        else:
            out[name] = value
    return out
