"""The OpenAPI 3.1 document of the operator API, generated from the route table and the
pydantic models it names — so it cannot list a route that does not exist or miss one.

Every request body, query and JSON response is a pydantic model; their JSON schemas are
generated together (``models_json_schema``) into ``components.schemas`` with one naming, so
every ``$ref`` resolves. Every operation has an ``operationId`` (the handler's name), a
summary, its typed success responses and the ``Error`` shape for its refusals.
"""

from __future__ import annotations

import re
import typing
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from bot.web.operators.http import Api, Endpoint

_PARAM = re.compile(r"{(\w+)}")
_REF = "#/components/schemas/{model}"

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "machine code, e.g. invalid_body"},
        "message": {"type": "string"},
        "details": {
            "type": "array",
            "items": {"type": "object", "properties": {
                "path": {"type": "string", "description": "e.g. templates.zh-CN"},
                "message": {"type": "string"}, "type": {"type": "string"}}},
        },
    },
}
_BINARY = {"type": "string", "format": "binary"}

ModelKey = tuple[type[BaseModel] | Any, JsonSchemaMode]


def _response_model(endpoint: Endpoint) -> tuple[type[BaseModel], bool] | None:
    """The response's model and whether the body is a list of it."""
    annotation = endpoint.response
    if annotation is None:
        return None
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        return item, True
    return annotation, False


def _models(api: Api) -> list[ModelKey]:
    keys: list[ModelKey] = []
    for endpoint in api.endpoints:
        for model in (endpoint.body, endpoint.query):
            if model is not None:
                keys.append((model, "validation"))
        if (found := _response_model(endpoint)) is not None:
            keys.append((found[0], "serialization"))
    return list(dict.fromkeys(keys))


def _responses(endpoint: Endpoint, refs: dict[ModelKey, Any]) -> dict[str, Any]:
    found = _response_model(endpoint)
    if found is not None:
        model, many = found
        ref = refs[(model, "serialization")]
        schema: dict[str, Any] = {"type": "array", "items": ref} if many else ref
    elif endpoint.produces == "application/json":
        schema = {}  # no model named: the tests refuse an untyped answer
    elif endpoint.produces == "text/csv":
        schema = {"type": "string"}
    else:
        schema = _BINARY
    error = {"content": {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}}}
    responses: dict[str, Any] = {
        str(code): {"description": text, "content": {endpoint.produces: {"schema": schema}}}
        for code, text in (endpoint.statuses or {200: "OK"}).items()
    }
    responses["401"] = {"description": "missing or invalid token or session", **error}
    responses["403"] = {"description": f"needs the {endpoint.role.value} role, or CSRF token "
                        "missing (session cookie)", **error}
    if _PARAM.search(endpoint.path):
        responses["404"] = {"description": "not found", **error}
    if endpoint.method != "GET":
        responses["409"] = {"description": "refused in the current state", **error}
    if endpoint.body is not None or endpoint.query is not None or endpoint.upload:
        responses["422"] = {"description": "invalid body or query, with field paths", **error}
    return responses


def _parameters(endpoint: Endpoint, refs: dict[ModelKey, Any],
                components: dict[str, Any]) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "integer" if name == "id" else "string"}}
        for name in _PARAM.findall(endpoint.path)
    ]
    if endpoint.query is not None:
        name = refs[(endpoint.query, "validation")]["$ref"].rsplit("/", 1)[-1]
        schema = components[name]
        required = set(schema.get("required", []))
        for field, prop in schema.get("properties", {}).items():
            parameter = {"name": field, "in": "query", "required": field in required,
                         "schema": prop}
            if "description" in prop:
                parameter["description"] = prop["description"]
            parameters.append(parameter)
    return parameters


def _operation(endpoint: Endpoint, refs: dict[ModelKey, Any],
               components: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": endpoint.handler.__name__,
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
        "x-required-role": endpoint.role.value,
        "parameters": _parameters(endpoint, refs, components),
        "responses": _responses(endpoint, refs),
    }
    if endpoint.body is not None:
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": refs[(endpoint.body, "validation")]}}}
    if endpoint.upload:
        op["requestBody"] = {"required": True, "content": {
            "text/csv": {"schema": {"type": "string"}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "file": _BINARY}}}}}
    return op


def document(api: Api, *, title: str = "Engage operator API") -> dict[str, Any]:
    refs, definitions = models_json_schema(_models(api), ref_template=_REF)
    components: dict[str, Any] = {**definitions.get("$defs", {}), "Error": ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in api.endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(
            endpoint, refs, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1",
                 "description": "Bearer token from `engage operator add`, or the console "
                                "session cookie plus X-CSRF-Token for changes. Roles: viewer "
                                "reads, agent also handles claims, documents and tasks, admin "
                                "also runs campaigns, points and rewards. Lists come in pages: "
                                "`limit` (at most 200) and the `next` link of each page."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "engage_session"},
            },
        },
    }


def route(api: Api) -> web.RouteDef:
    cached: dict[str, Any] = {}

    async def openapi_json(request: web.Request) -> web.Response:
        if not cached:
            cached.update(document(api))
        return web.json_response(cached)

    return web.get(f"{api.prefix}/openapi.json", openapi_json)
