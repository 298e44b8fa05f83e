"""Public pages that need neither a signature nor a login: the one-click unsubscribe link of
every mail (RFC 8058). The signed token in the URL is the capability."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, abort, render_template
from sqlalchemy.exc import IntegrityError

from app.extensions import csrf, db
from app.services.email import mails
from app.services.webhooks import events

bp = Blueprint("public", __name__)


def _target(token: str) -> tuple[str, str]:
    found = mails.read_unsubscribe_token(token)
    if found is None:
        abort(404, "This unsubscribe link is not valid.")
    return found


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> Any:
    """A confirmation page: a GET (a link scanner, a preview) never unsubscribes."""
    _, address = _target(token)
    return render_template("public/unsubscribe.html", address=address, token=token, done=False)


@bp.post("/unsubscribe/<token>")
@csrf.exempt
def unsubscribe(token: str) -> Any:
    """The one-click POST (`List-Unsubscribe=One-Click` from a mail client) or the page's button."""
    tenant_id, address = _target(token)
    try:
        if mails.suppress(
            tenant_id, address, "unsubscribed by the recipient", actor=f"recipient:{address}", by_recipient=True
        ):
            events.emit(tenant_id, "email.unsubscribed", {"address": address})
        db.session.commit()
    except IntegrityError:  # the same link clicked twice at once: the other request did it
        db.session.rollback()
    return render_template("public/unsubscribe.html", address=address, token=token, done=True)


def register(app: Flask) -> None:
    app.register_blueprint(bp)
