"""OpenAPI for routes that read their body themselves (to stream, inflate and validate items).

Litestar documents a request body from a `data` parameter; ingestion routes have none, so the
body schema comes from the wire models' own JSON schema, converted once into components.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar.openapi.spec import (
    Components,
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)
from pydantic.json_schema import models_json_schema

from chronos_core._models import ExecutionBatch, JobRegistration

__all__ = ["json_body_operation", "wire_components"]

_REF_PREFIX = "#/components/schemas/"
_SCHEMA_FIELDS = {
    field.metadata.get("alias", field.name): field.name for field in dataclasses.fields(Schema)
}
_NESTED_ONE = {"items", "not", "additionalProperties", "contains", "propertyNames"}
_NESTED_MANY = {"anyOf", "allOf", "oneOf", "prefixItems"}
_NESTED_MAP = {"properties", "patternProperties"}
_FORMATS = {fmt.value: fmt for fmt in OpenAPIFormat}


def _schema(node: Any) -> Schema | Reference:
    if "$ref" in node:
        return Reference(ref=str(node["$ref"]))
    kwargs: dict[str, Any] = {}
    for key, value in node.items():
        name = _SCHEMA_FIELDS.get(key)
        if name is None:
            continue
        if key == "type":
            value = OpenAPIType(value)
        elif key == "format":
            if value not in _FORMATS:
                continue
            value = _FORMATS[value]
        elif key in _NESTED_ONE and isinstance(value, dict):
            value = _schema(value)
        elif key in _NESTED_MANY:
            value = [_schema(item) for item in value]
        elif key in _NESTED_MAP:
            value = {k: _schema(v) for k, v in value.items()}
        kwargs[name] = value
    return Schema(**kwargs)


def wire_components() -> Components:
    """Components for the request bodies of ingestion (JobRegistration, ExecutionBatch)."""
    _, top = models_json_schema(
        [(JobRegistration, "validation"), (ExecutionBatch, "validation")],
        by_alias=True,
        ref_template=_REF_PREFIX + "{model}",
    )
    return Components(
        schemas={name: _schema(node) for name, node in top.get("$defs", {}).items()}  # type: ignore[misc]
    )


def json_body_operation(model_name: str) -> type[Operation]:
    """An `Operation` class whose request body is the component `model_name`, as JSON."""

    @dataclasses.dataclass
    class _JsonBodyOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                content={
                    "application/json": OpenAPIMediaType(
                        schema=Reference(ref=_REF_PREFIX + model_name)
                    )
                },
                description="JSON, optionally with `Content-Encoding: gzip`",
                required=True,
            )

    _JsonBodyOperation.__name__ = f"{model_name}Operation"
    return _JsonBodyOperation
