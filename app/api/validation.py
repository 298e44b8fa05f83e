"""Fields and validators whose runtime check is exactly what the OpenAPI document says."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate

#: PostgreSQL text cannot hold U+0000, and no name, id or message needs it: refused everywhere.
NUL = "\x00"


#: The deepest nesting a JSON body may have: it is serialised again (database, answer, webhooks)
#: by recursive encoders that share Python's recursion limit with the request's own frames.
MAX_JSON_DEPTH = 64


def unstorable(value: Any) -> str | None:
    """Why a JSON value cannot be taken (U+0000 or a lone surrogate such as "\\ud800" in a
    string or a key, nesting beyond MAX_JSON_DEPTH), or None. Iterative, so no body can exhaust
    the stack here."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return "Text must not contain NUL characters (U+0000)."
            if not item.isascii() and not _encodable(item):
                return "Text must be valid Unicode: a lone surrogate (\\ud800–\\udfff) cannot be stored."
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                return f"JSON must not be nested deeper than {MAX_JSON_DEPTH} levels."
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


class Pattern(validate.Regexp):
    """A regular expression the whole value must match, as JSON Schema's `pattern` with `^…$` means
    it (`re.match` would take a trailing newline). Write patterns ECMAScript reads the same way:
    `[0-9]`, not `\\d` (which is any Unicode digit in Python)."""

    def __call__(self, value: Any) -> Any:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class Boolean(fields.Boolean):
    """JSON `true` or `false` only (marshmallow also takes 1, "yes", "on", … which the document
    does not promise)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if value is True or value is False:
            return value
        raise self.make_error("invalid", input=value)


class Float(fields.Float):
    """A JSON number only (marshmallow also takes numeric strings)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid", input=value)
        return super()._deserialize(value, attr, data, **kwargs)
