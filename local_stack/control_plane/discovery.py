"""Google's discovery documents: which APIs the fake serves, their routes, their schemas.

The documents are the ones shipped inside google-api-python-client, so the fake knows
exactly the methods and fields the engine's clients do. Every request is matched to a
discovery method by HTTP verb and flat path, and its body is validated against the method's
request schema: an unknown field, a wrong type, a bad enum value or an output-only field is
a 400, as Google answers.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import googleapiclient

DOCUMENTS = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"
APIS = {
    "storage": "v1",
    "pubsub": "v1",
    "iam": "v1",
    "cloudfunctions": "v2",
    "run": "v2",
    "monitoring": "v3",
    "logging": "v2",
    "serviceusage": "v1",
    "cloudresourcemanager": "v1",
    "eventarc": "v1",
}
DASHBOARDS = ("monitoring", "v1")  # dashboards live in monitoring v1


def served(api: str, version: str) -> bool:
    return APIS.get(api) == version or (api, version) == DASHBOARDS


@functools.cache
def document(api: str, version: str) -> dict[str, Any]:
    return json.loads((DOCUMENTS / f"{api}.{version}.json").read_text())


@dataclass(frozen=True)
class Method:
    api: str
    version: str
    id: str
    verb: str
    pattern: re.Pattern
    literal: int
    spec: dict[str, Any]

    @property
    def action(self) -> str:
        return self.id.rsplit(".", 1)[-1]

    @property
    def collection(self) -> str:
        """`pubsub.projects.topics` for `pubsub.projects.topics.create`."""
        return self.id.rsplit(".", 1)[0]

    @property
    def long_running(self) -> bool:
        return "Operation" in self.spec.get("response", {}).get("$ref", "")


def _methods(resources: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for resource in resources.values():
        yield from resource.get("methods", {}).values()
        yield from _methods(resource.get("resources", {}))


@functools.cache
def routes(api: str, version: str) -> list[Method]:
    """Every method of the API, the most literal path first (so `…:enable` beats `{name}`)."""
    found = []
    for spec in _methods(document(api, version).get("resources", {})):
        template = spec.get("flatPath") or spec["path"]
        regex = re.sub(r"\\\{\\\+[^}]+\\\}", "(.+)", re.escape(template))
        regex = re.sub(r"\\\{[^}]+\\\}", "([^/]+)", regex)
        literal = len(re.sub(r"\{[^}]+\}", "", template))
        found.append(
            Method(api, version, spec["id"], spec["httpMethod"], re.compile(f"^{regex}$"),
                   literal, spec)
        )  # fmt: skip
    return sorted(found, key=lambda m: -m.literal)


def route(api: str, version: str, verb: str, path: str) -> Method | None:
    return next((m for m in routes(api, version) if m.verb == verb and m.pattern.match(path)), None)


def siblings(method: Method) -> set[str]:
    """The actions of the collection `method` belongs to."""
    prefix = method.collection + "."
    return {m.action for m in routes(method.api, method.version) if m.id.startswith(prefix)}


def list_field(method: Method) -> str:
    """The array field of a list response (`topics`, `items`, `functions`, …)."""
    schemas = document(method.api, method.version)["schemas"]
    response = schemas.get(method.spec.get("response", {}).get("$ref", ""), {})
    return next(
        (f for f, spec in response.get("properties", {}).items() if spec.get("type") == "array"),
        "items",
    )


class Invalid(ValueError):
    pass


def _output_only(schema: dict[str, Any]) -> bool:
    return schema.get("readOnly") is True or schema.get("description", "").startswith(
        ("Output only", "[Output only]", "Output-only")
    )


def validate(document: dict[str, Any], schema: dict[str, Any], value: Any, where: str) -> None:
    """Check `value` against a discovery schema; raise Invalid naming the field."""
    if "$ref" in schema:
        schema = document["schemas"][schema["$ref"]]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if not isinstance(value, dict):
            raise Invalid(f"{where or 'body'}: expected an object")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            path = f"{where}.{key}" if where else key
            if key in properties:
                if _output_only(properties[key]):
                    raise Invalid(f"{path}: output-only field must not be sent")
                validate(document, properties[key], item, path)
            elif extra is not None:
                validate(document, extra, item, path)
            else:
                raise Invalid(f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}'")
    elif kind == "array":
        if not isinstance(value, list):
            raise Invalid(f"{where}: expected an array")
        for index, item in enumerate(value):
            validate(document, schema.get("items", {}), item, f"{where}[{index}]")
    elif kind == "string":
        if not isinstance(value, str):
            raise Invalid(f"{where}: expected a string, got {type(value).__name__}")
        if "enum" in schema and value not in schema["enum"]:
            raise Invalid(f"{where}: invalid value {value!r} (one of {', '.join(schema['enum'])})")
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise Invalid(f"{where}: expected an integer")
        if isinstance(value, str) and not re.fullmatch(r"-?\d+", value):
            raise Invalid(f"{where}: expected an integer")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(f"{where}: expected a number")
    elif kind == "boolean" and not isinstance(value, bool):
        raise Invalid(f"{where}: expected a boolean")
