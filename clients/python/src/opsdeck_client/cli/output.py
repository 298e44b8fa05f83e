"""How the CLI prints answers: JSON by default, a table with --table, bytes as they are."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

#: Longest cell in a table; longer values are cut with "…".
CELL = 40


def print_json(value: Any, out: TextIO | None = None) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False), file=out or sys.stdout)


def print_table(value: Any, out: TextIO | None = None) -> None:
    """A list of objects as rows (their scalar fields as columns, the id first); one object as
    field/value lines; anything else as JSON."""
    out = out or sys.stdout
    if isinstance(value, dict) and isinstance(value.get("data"), list):
        value = value["data"]
    if isinstance(value, dict):
        rows = [[key, _cell(item)] for key, item in value.items()]
        _render(["field", "value"], rows, out)
    elif isinstance(value, list) and all(isinstance(item, dict) for item in value):
        columns = [key for key, item in (value[0].items() if value else []) if _scalar(item)]
        columns.sort(key=lambda key: key != "id")  # the id first, the rest as the server sent them
        _render(columns, [[_cell(row.get(key)) for key in columns] for row in value], out)
    else:
        print_json(value, out)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _cell(value: Any) -> str:
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())  # one line per row
    return text if len(text) <= CELL else text[: CELL - 1] + "…"


def _render(columns: list[str], rows: list[list[str]], out: TextIO) -> None:
    if not columns:
        return
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    for line in [columns, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip(), file=out)


def print_problem(problem: dict[str, Any], out: TextIO | None = None) -> None:
    """An error document on stderr: the problem+json members Opsdeck sent."""
    print(json.dumps(problem, indent=2, ensure_ascii=False), file=out or sys.stderr)


def write_bytes(content: bytes, output: str | None) -> None:
    """A non-JSON answer: to `output` (a path) or to stdout as bytes."""
    if output and output != "-":
        with open(output, "wb") as file:
            file.write(content)
    else:
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
