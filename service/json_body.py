"""JSON request bodies: a JSON content type, unique keys, and large bodies validated off the loop.

- A body without a JSON content type (`application/json`, `application/*+json`) gets 415:
  FastAPI would validate the raw bytes and answer a puzzling 422.
- A key repeated in one object gets 422 naming it: `json.loads` keeps the last value silently,
  so `{"horizon": 1, "horizon": 5}` would be read as whatever the last writer meant.
- FastAPI parses and validates a body on the event loop: for a 5,000-bar body that is tens of
  ms during which the worker answers nothing else. Past OFFLOAD_BYTES, `OffloadedJSONRoute`
  parses and validates in a thread, where pure-Python validators let the loop take turns.
  FastAPI then receives a validated model, which it accepts without revalidating.
  Small bodies keep FastAPI's own path: the thread hop would cost more than it saves.
(The FastAPI docs' "custom Request and APIRoute class" pattern.)
"""

from __future__ import annotations

import asyncio
import json
from email.message import Message

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

OFFLOAD_BYTES = 64 * 1024


class DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):  # rare: find which, only then
        raise DuplicateKey
    return out


class _Pairs(list):
    """A JSON object as its (key, value) pairs, repeated keys included."""


def _duplicate_path(document) -> tuple:
    """Where the first repeated key is, in a document parsed with `object_pairs_hook=_Pairs`.

    A loop, not recursion: the document may be nested as deep as `json.loads` allows.
    """
    stack = [(document, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _Pairs):
            seen = set()
            for key, _ in node:
                if key in seen:
                    return (*path, key)
                seen.add(key)
            stack.extend(((value, (*path, key)) for key, value in reversed(node)))
        elif isinstance(node, list):
            stack.extend(((value, (*path, i)) for i, value in reversed(list(enumerate(node)))))
    return ()


def parse_json(body: bytes):
    """`json.loads`, refusing a key repeated in an object with a 422 naming it (and where it is)."""
    try:
        return json.loads(body, object_pairs_hook=_unique_keys)
    except DuplicateKey:
        path = _duplicate_path(json.loads(body, object_pairs_hook=_Pairs))
        key = path[-1] if path else "?"
        error = {"type": "duplicate_key", "loc": ("body", *path), "input": None,
                 "msg": f"duplicate key {key!r}: each key may appear once in an object"}  # fmt: skip
        raise RequestValidationError([error]) from None


def is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class _JSONRequest(Request):
    model: type[BaseModel] | None = None

    async def json(self):
        """The parsed body; past OFFLOAD_BYTES, the validated model. Errors are answered as FastAPI
        would (422 `json_invalid`, 400), plus 422 for a repeated key."""
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                if self.model is None or len(body) <= OFFLOAD_BYTES:
                    self._json = parse_json(body)
                else:
                    self._json = await asyncio.to_thread(self._validated, body)
            except json.JSONDecodeError as exc:
                error = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error",
                         "input": {}, "ctx": {"error": exc.msg}}  # fmt: skip
                raise RequestValidationError([error]) from None
            except (ValueError, RecursionError):  # not UTF-8 (or -16/-32), nested too deep
                raise HTTPException(400, "There was an error parsing the body") from None
        return self._json

    def _validated(self, body: bytes) -> BaseModel:
        data = parse_json(body)
        try:
            return self.model.model_validate(data)
        except ValidationError as exc:  # FastAPI's shape: locations start at "body"
            errors = exc.errors(include_url=False)
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


class OffloadedJSONRoute(APIRoute):
    def get_route_handler(self):
        handler = super().get_route_handler()
        # (FastAPI's ModelField no longer has `type_`: reading it turned the offload off unnoticed)
        model = self.body_field.field_info.annotation if self.body_field else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return handler

        request_class = type("JSONRequest", (_JSONRequest,), {"model": model})

        async def route_handler(request: Request):
            request = request_class(request.scope, request.receive)
            if await request.body():
                content_type = request.headers.get("content-type")
                if not is_json(content_type):
                    raise HTTPException(
                        415,
                        "the body must be JSON, sent with Content-Type: application/json "
                        f"({content_type or 'no Content-Type'} given)",
                    )
                # Parsed here, outside FastAPI's body reading, which would turn our 422s into 400s.
                await request.json()
            return await handler(request)

        return route_handler
