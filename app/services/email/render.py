"""Email templates: `templates/email/<name>.txt` (required; its `subject` block is the
subject) and `<name>.html` (optional), extending `_layout.*`. HTML is autoescaped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app
from jinja2 import Environment, FileSystemLoader, TemplateNotFound, select_autoescape

from app.config import ROOT

TEMPLATE_DIR = ROOT / "templates" / "email"
#: Templates Opsdeck fills itself (the digest batcher's, with its own context): no mail names them.
INTERNAL = frozenset({"digest"})


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None


def _env() -> Environment:
    env = current_app.extensions.get("opsdeck_email_templates")
    if env is None:
        env = Environment(
            loader=FileSystemLoader(str(TEMPLATE_DIR)),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            keep_trailing_newline=False,
            trim_blocks=False,
            auto_reload=current_app.debug,  # no stat() of the template files per mail in production
        )
        current_app.extensions["opsdeck_email_templates"] = env
    return env


def names() -> set[str]:
    """Templates a mail may name: every `<name>.txt` not starting with `_`, but the INTERNAL ones."""
    return {p.stem for p in TEMPLATE_DIR.glob("*.txt") if not p.stem.startswith("_")} - INTERNAL


def _one_line(value: str) -> str:
    return " ".join(value.split())  # no header injection: a subject is one line


def render(
    template: str | None,
    context: dict[str, Any] | None,
    *,
    subject: str | None = None,
    text: str | None = None,
    html: str | None = None,
    unsubscribe_url: str = "",
) -> Rendered:
    """A mail's subject, text and HTML: from its template, or as given (inline mails)."""
    if template is None:
        return Rendered(_one_line(subject or ""), text or "", html)
    env = _env()
    sender = current_app.config["EMAIL_FROM"].split("<")[0].strip() or "Opsdeck"
    values = {"sender_name": sender, "unsubscribe_url": unsubscribe_url, **(context or {})}
    txt = env.get_template(f"{template}.txt")
    subject_block = txt.blocks.get("subject")
    rendered_subject = "".join(subject_block(txt.new_context(values))) if subject_block else (subject or "")
    rendered_subject = _one_line(rendered_subject or subject or "")
    body_text = txt.render(values).strip() + "\n"
    try:
        body_html = env.get_template(f"{template}.html").render({**values, "subject": rendered_subject})
    except TemplateNotFound:
        body_html = None
    return Rendered(rendered_subject, body_text, body_html)
