"""`.cog/openapi_schema.json` as `cog build` would write it, without the Go CLI.

coglet validates inputs only against this file (../shared/reference/cog-runtime.md §2), and `cog
build` produces it with a static parser we cannot run here. We build the same document from the
predictor's live signature through cog's own inspector, in the layout of cog's
`pkg/schema/openapi_spec.go` (enum components named after the input, `allOf` references,
`x-order`, `nullable`, a `None` default on a non-optional input meaning "required").
`tests/test_cog_adapters.py` checks that the adapters stay parseable by the static parser.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from cog import _adt as adt
from cog import _inspector

OPTIONAL = (adt.Repetition.OPTIONAL, adt.Repetition.OPTIONAL_REPEATED)
ERROR_RESPONSE = {
    "description": "Validation Error",
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
    },
}


def load_info(ref: str, root: Path) -> adt.PredictorInfo:
    """Inspect `file.py:Name` (relative to `root`) with cog's own inspector."""
    file_name, _, name = ref.partition(":")
    path = (root / file_name).resolve()
    module_name = ".".join(path.relative_to(root.resolve()).with_suffix("").parts)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    if importlib.util.find_spec(module_name) is None:
        raise FileNotFoundError(f"{ref}: {path} is not importable from {root}")
    return _inspector.create_predictor(module_name, name)


def _title(name: str) -> str:
    return name.replace("_", " ").title()


def _property(field: adt.InputField, enums: dict[str, dict]) -> tuple[dict, bool]:
    prop: dict[str, Any] = {"x-order": field.order}
    if field.choices:
        enums[field.name] = {
            "title": field.name,
            "description": "An enumeration.",
            "enum": list(field.choices),
            "type": field.type.primitive.json_type()["type"],
        }
        prop["allOf"] = [{"$ref": f"#/components/schemas/{field.name}"}]
    else:
        prop["title"] = _title(field.name)
        prop.update(field.type.json_type())
    nullable = field.type.repetition in OPTIONAL
    has_default = field.default is not None
    if has_default:
        prop["default"] = field.type.json_encode(field.default)
    if nullable:
        prop["nullable"] = True
    constraints = {
        "description": field.description,
        "minimum": field.ge,
        "maximum": field.le,
        "minLength": field.min_length,
        "maxLength": field.max_length,
        "pattern": field.regex,
    }
    prop.update({k: v for k, v in constraints.items() if v is not None})
    if field.deprecated:
        prop["deprecated"] = True
    required = not has_default and field.type.repetition not in OPTIONAL
    return prop, required


def input_schema(info: adt.PredictorInfo, title: str) -> tuple[dict, dict[str, dict]]:
    enums: dict[str, dict] = {}
    properties, required = {}, []
    for field in sorted(info.inputs.values(), key=lambda f: f.order):
        properties[field.name], is_required = _property(field, enums)
        if is_required:
            required.append(field.name)
    schema: dict[str, Any] = {"title": title, "type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema, enums


def _operation(kind: str, request: str, response: str, streaming: bool) -> dict:
    train = kind == "train"
    operation = {
        "summary": "Train" if train else "Predict",
        "description": f"Run a single {'training' if train else 'prediction'} on the model",
        "operationId": "train_trainings_post" if train else "predict_predictions_post",
        "requestBody": {
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{request}"}}}
        },
        "responses": {
            "200": {
                "description": "Successful Response",
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{response}"}}
                },
            },
            "422": ERROR_RESPONSE,
        },
    }
    if streaming and not train:
        operation["x-cog-streaming"] = True
    return operation


def mode_schema(info: adt.PredictorInfo, kind: str, streaming: bool = False) -> dict:
    """The OpenAPI document for one mode ("predict" or "train")."""
    train = kind == "train"
    in_key, out_key = ("TrainingInput", "TrainingOutput") if train else ("Input", "Output")
    request, response = ("Training", "Training") if train else ("Prediction", "Prediction")
    request, response = f"{request}Request", f"{response}Response"
    endpoint = "/trainings" if train else "/predictions"
    inputs, enums = input_schema(info, in_key)
    ref = {"$ref": f"#/components/schemas/{in_key}"}
    out_ref = {"$ref": f"#/components/schemas/{out_key}"}
    schemas: dict[str, Any] = {in_key: inputs, out_key: info.output.json_type(), **enums}
    schemas[request] = {
        "title": request,
        "type": "object",
        "properties": {"id": {"title": "Id", "type": "string"}, "input": ref},
    }
    schemas[response] = {
        "title": response,
        "type": "object",
        "properties": {
            "input": ref,
            "output": out_ref,
            "id": {"title": "Id", "type": "string"},
            "status": {"title": "Status", "type": "string"},
            "error": {"title": "Error", "type": "string"},
            "logs": {"title": "Logs", "type": "string"},
            "metrics": {"title": "Metrics", "type": "object"},
        },
    }
    schemas.update(_common_components())
    any_json = {"application/json": {"schema": {}}}
    ok = {"200": {"description": "Successful Response", "content": any_json}}
    paths = {
        "/": {"get": {"summary": "Root", "operationId": "root__get", "responses": ok}},
        "/health-check": {
            "get": {
                "summary": "Healthcheck",
                "operationId": "healthcheck_health_check_get",
                "responses": ok,
            }
        },
        endpoint: {"post": _operation(kind, request, response, streaming)},
    }
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _common_components() -> dict:
    return {
        "Status": {
            "title": "Status",
            "description": "An enumeration.",
            "enum": ["starting", "processing", "succeeded", "canceled", "failed"],
            "type": "string",
        },
        "HTTPValidationError": {
            "title": "HTTPValidationError",
            "type": "object",
            "properties": {
                "detail": {
                    "title": "Detail",
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/ValidationError"},
                }
            },
        },
        "ValidationError": {
            "title": "ValidationError",
            "required": ["loc", "msg", "type"],
            "type": "object",
            "properties": {
                "loc": {
                    "title": "Location",
                    "type": "array",
                    "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                },
                "msg": {"title": "Message", "type": "string"},
                "type": {"title": "Error Type", "type": "string"},
            },
        },
    }


def _supports_streaming(ref: str, root: Path) -> bool:
    """True when the predict method is decorated with @cog.streaming (as the Go parser checks)."""
    file_name = ref.partition(":")[0]
    source = (root / file_name).read_text()
    return "@streaming" in source or "@cog.streaming" in source


def generate(root: Path, predict_ref: str | None, train_ref: str | None) -> dict:
    """The combined schema `cog build` writes for a cog.yaml with these `run:`/`train:` refs."""
    if not predict_ref and not train_ref:
        raise ValueError("no run/predict or train reference")
    documents = []
    if predict_ref:
        info = load_info(predict_ref, root)
        documents.append(mode_schema(info, "predict", _supports_streaming(predict_ref, root)))
    if train_ref:
        documents.append(mode_schema(load_info(train_ref, root), "train"))
    merged = documents[0]
    for other in documents[1:]:
        for path, item in other["paths"].items():
            merged["paths"].setdefault(path, item)
        for name, item in other["components"]["schemas"].items():
            merged["components"]["schemas"].setdefault(name, item)
    return merged


def write(root: Path, predict_ref: str | None, train_ref: str | None) -> Path:
    path = Path(root) / ".cog" / "openapi_schema.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = generate(Path(root), predict_ref, train_ref)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
