"""The OpenAPI 3.1 document of the operator API, generated from the route table and the
pydantic models it names — so it cannot list a route that does not exist or miss one."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from bot.web.operators.http import Api, Endpoint

_PARAM = re.compile(r"{(\w+)}")

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "machine code"},
        "message": {"type": "string"},
        "details": {
            "type": "array",
            "items": {"type": "object", "properties": {
                "path": {"type": "string", "description": "e.g. templates.zh-CN"},
                "message": {"type": "string"}, "type": {"type": "string"}}},
        },
    },
}


def _schema_ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _operation(endpoint: Endpoint, components: dict[str, Any]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "integer" if name == "id" else "string"}}
        for name in _PARAM.findall(endpoint.path)
    ]
    if endpoint.query is not None:
        schema = endpoint.query.model_json_schema()
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            parameters.append({"name": name, "in": "query", "required": name in required,
                               "schema": prop})
    ok = endpoint.statuses or {200: "OK"}
    responses: dict[str, Any] = {
        str(code): {"description": text, "content": {endpoint.produces: {"schema": {}}}}
        for code, text in ok.items()
    }
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    responses["401"] = {"description": "missing or invalid token or session", **error}
    responses["403"] = {"description": f"needs the {endpoint.role.value} role, or CSRF token "
                        "missing (session cookie)", **error}
    op: dict[str, Any] = {
        "operationId": endpoint.handler.__name__,
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
        "x-required-role": endpoint.role.value,
        "parameters": parameters,
        "responses": responses,
    }
    if endpoint.body is not None:
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": _schema_ref(endpoint.body, components)}}}
    if endpoint.upload:
        op["requestBody"] = {"required": True, "content": {
            "text/csv": {"schema": {"type": "string"}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "file": {"type": "string", "format": "binary"}}}}}}
    if endpoint.body is not None or endpoint.query is not None or endpoint.upload:
        responses["422"] = {"description": "invalid body or query, with field paths", **error}
    if _PARAM.search(endpoint.path):
        responses["404"] = {"description": "not found", **error}
    return op


def document(api: Api, *, title: str = "Engage operator API") -> dict[str, Any]:
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in api.endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(
            endpoint, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1",
                 "description": "Bearer token from `engage operator add`, or the console "
                                "session cookie plus X-CSRF-Token for changes. Roles: viewer "
                                "reads, agent also handles claims, documents and tasks, admin "
                                "also runs campaigns, points and rewards."},
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
