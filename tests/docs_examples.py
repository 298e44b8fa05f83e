"""The shell examples of the README and the docs: fenced blocks, their `<!-- example: NAME -->`
markers, and which blocks talk to Opsdeck (tests/test_docs_examples.py runs them, tests/test_docs.py
checks the markers)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tests.fakes.processes import ROOT

#: The Markdown files whose examples are run: the README, every page, the changelog.
SOURCES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
SHELL = {"sh", "bash", "shell", "console"}
#: What makes a shell block one that talks to Opsdeck.
TALKS = re.compile(r"\bcurl\b|\bopsdeck_api\b|\$\{?OPSDECK_URL\b|/api/v1/|^opsdeck \w", re.M)
_MARKER = re.compile(r"^<!--\s*example:\s*(?P<name>[a-z0-9-]+)(?P<attrs>(?:\s+[a-z]+=[a-z0-9-]+)*)\s*-->$")
_FENCE = re.compile(r"^(?P<indent> *)(?P<ticks>`{3,})(?P<lang>[\w+-]*)")


@dataclass
class Block:
    path: Path
    line: int
    lang: str
    code: str
    name: str | None = None
    uses: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def talks_to_opsdeck(self) -> bool:
        return self.lang in SHELL and bool(TALKS.search(self.code))


def blocks(path: Path) -> list[Block]:
    """Every top-level fenced block of a Markdown file (a fence inside a longer fence is its
    content), with the example marker on the line before it, if any."""
    found: list[Block] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent, ticks = len(fence["indent"]), fence["ticks"]
        start, body = i, []
        i += 1
        while i < len(lines) and not re.match(rf"^ {{0,{indent + 3}}}{ticks}`*\s*$", lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        block = Block(path, start + 1, fence["lang"], "\n".join(body) + "\n")
        before = next((line.strip() for line in reversed(lines[:start]) if line.strip()), "")
        marker = _MARKER.match(before)
        if marker:
            block.name = marker["name"]
            attrs = dict(a.split("=") for a in marker["attrs"].split())
            block.uses = attrs.get("uses")
        found.append(block)
        i += 1
    return found


def all_blocks() -> list[Block]:
    return [block for path in SOURCES for block in blocks(path)]


def examples() -> dict[str, Block]:
    """The marked blocks by name (a name used twice is an error, reported by tests/test_docs.py)."""
    return {block.name: block for block in all_blocks() if block.name}


def script(name: str) -> str:
    """The bash text that runs example `name`: the example it uses first, then its own code."""
    found = examples()
    block = found[name]
    prelude = script(block.uses) if block.uses else ""
    return prelude + block.code
