"""Phone numbers: the forms platforms, Daraja and customers write them in, and the one form
Opsdeck keeps and matches (E.164 with the plus, `+254712345678`).

Accepted, spaces and dashes ignored anywhere:
- E.164: `+254712345678`, `+254 712 345 678`;
- the default country's number without the plus, as Daraja sends it: `254712345678`;
- the national form: `0712345678` (`PHONE_DEFAULT_COUNTRY_CODE` stands for the 0).

Digits without a plus must start with the default country code: `712345678` (the 0 forgotten)
would otherwise be read as another country's number.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from flask import current_app

#: The longest text taken as a phone, separators included.
MAX_LENGTH = 32
#: E.164: at most 15 digits; 8 is the shortest Opsdeck takes (as it always has).
MIN_DIGITS, MAX_DIGITS = 8, 15
#: Spaces and dashes, anywhere.
_SEP = "[ -]*"


class InvalidPhone(ValueError):
    """Not a phone number in a form Opsdeck reads; the message names the forms."""


def _digits(low: int, high: int) -> str:
    return f"(?:[0-9]{_SEP}){{{low},{high}}}"


@lru_cache(maxsize=8)
def pattern(country_code: str) -> str:
    """The accepted forms as one regular expression (ECMAScript reads it the same way: the
    OpenAPI document states it, the API applies it)."""
    rest = (MIN_DIGITS - len(country_code) - 1, MAX_DIGITS - len(country_code) - 1)
    e164 = rf"\+{_SEP}[1-9]{_SEP}{_digits(MIN_DIGITS - 1, MAX_DIGITS - 1)}"
    bare = "".join(digit + _SEP for digit in country_code) + f"[1-9]{_SEP}{_digits(*rest)}"
    national = rf"0{_SEP}[1-9]{_SEP}{_digits(*rest)}"
    return rf"^{_SEP}(?:{e164}|{bare}|{national})$"


def forms(country_code: str) -> str:
    """The accepted forms, for messages."""
    cc = country_code
    return (
        f"+{cc}712345678 (E.164), {cc}712345678 (as M-Pesa sends it) or 0712345678 (national, +{cc}); "
        "spaces and dashes are ignored"
    )


def default_country_code() -> str:
    return str(current_app.config["PHONE_DEFAULT_COUNTRY_CODE"])


def normalise(raw: Any, country_code: str | None = None) -> str:
    """`raw` as E.164 with the plus, or InvalidPhone naming the accepted forms. `country_code`
    (default: PHONE_DEFAULT_COUNTRY_CODE) stands for a national form's 0."""
    cc = country_code or default_country_code()
    text = raw if isinstance(raw, str) else ""
    if not text or len(text) > MAX_LENGTH or re.fullmatch(pattern(cc), text) is None:
        raise InvalidPhone(f"Not a phone number. Use {forms(cc)}.")
    compact = text.replace(" ", "").replace("-", "")
    if compact.startswith("+"):
        return compact
    if compact.startswith("0"):
        return f"+{cc}{compact[1:]}"
    return f"+{compact}"


def json_schema() -> dict[str, Any]:
    """The OpenAPI schema of a phone field, for this app's default country code."""
    cc = default_country_code()
    return {
        "type": "string",
        "pattern": pattern(cc),
        "maxLength": MAX_LENGTH,
        "description": f"{forms(cc)}; kept as E.164 (+{cc}712345678)",
    }
