"""What the bulk calls share (POST /jobs/batch, /events/batch): the items' list, its limits
and the rate limit counted per item. Validation is all or nothing: any invalid item is a 422
with the errors keyed by the item's index, and nothing is written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, jsonify
from flask.wrappers import Response
from marshmallow import Schema, ValidationError

from app.api import charge
from app.api.errors import validation_failed
from app.api.writes import json_body

T = TypeVar("T")


def items(field: str) -> list[Any]:
    """The body's `field` list (1 to API_BATCH_MAX_ITEMS items), counted against the rate
    limit, or a 422 problem."""
    body = json_body()
    value = body.get(field)
    most = current_app.config["API_BATCH_MAX_ITEMS"]
    if not isinstance(value, list):
        raise validation_failed({field: [f"Send a list of 1 to {most} items."]})
    if not 1 <= len(value) <= most:
        raise validation_failed({field: [f"Send 1 to {most} items; this list has {len(value)}."]})
    per_minute = current_app.config["API_RATE_LIMIT_PER_MINUTE"]
    if 0 < per_minute < len(value):  # it would be refused in every minute: say so, not 429
        raise validation_failed({field: [f"Send at most {per_minute} items: the rate limit per minute."]})
    charge(len(value))
    return value


def load_each(
    field: str, schema: Schema, build: Callable[[dict[str, Any]], T], refused: tuple[type[Exception], ...]
) -> tuple[list[dict[str, Any]], list[T]]:
    """Each item of the body's `field` loaded with `schema` and built with `build` (which
    raises one of `refused`, with field messages in `.messages` or as its text, for an invalid
    item); 422 with every invalid item's errors by index."""
    loaded, built = [], []
    errors: dict[int, Any] = {}
    for n, item in enumerate(items(field)):
        if not isinstance(item, dict):
            errors[n] = {"_schema": ["Must be a JSON object."]}
            continue
        try:
            data = schema.load(item)
            loaded.append(data)
            built.append(build(data))
        except ValidationError as err:
            errors[n] = err.messages
        except refused as err:
            errors[n] = getattr(err, "messages", None) or {"_schema": [str(err)]}
    refuse_invalid(field, errors)
    return loaded, built


def refuse_invalid(field: str, errors: dict[int, Any]) -> None:
    """422 with `errors` keyed by item index, when there are any."""
    if errors:
        raise validation_failed({field: {str(n): messages for n, messages in sorted(errors.items())}})


def answer(dumped: list[dict[str, Any]], replayed: list[bool]) -> Response:
    """202 with the items' answers in request order, each marked replayed or not."""
    response = jsonify({"data": [{**item, "replayed": again} for item, again in zip(dumped, replayed, strict=True)]})
    response.status_code = 202
    return response
