"""The `write` decorator every POST/PATCH/DELETE view wears: one transaction per request (its
work and its idempotency record commit together), the stored response replayed for a repeat.

A request's record is keyed by its Idempotency-Key, or by its signature when it has none: a
client's automatic retry sends the same signed request again within the signature's window,
and gets the first answer (marked `Idempotent-Replayed: true`), refusals (4xx) included. A
repeat that arrives while the first is still running is a twin: both run, the record's unique
key lets one commit, and the other rolls back and answers as that one did.

A view under `write` must not commit: a request that loses an Idempotency-Key race to a twin
rolls its work back, and only what is still uncommitted goes."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any

from flask import Response, g, json, make_response, request

from app.api import auth
from app.api.errors import ApiProblem, as_problem, validation_failed
from app.api.validation import unstorable
from app.extensions import db
from app.services import idempotency

#: Response headers replayed with a stored response.
REPLAYED_HEADERS = ("Location",)


def write(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        claim = request_claim()
        if claim is not None and (not claim.implicit or g.get("signature_seen")):
            found = look_up(claim)
            if isinstance(found, idempotency.Replay):
                return replayed(found)
            claim = found
        try:
            response = make_response(view(*args, **kwargs))
        except Exception as err:
            return failed(claim, err)
        if response.status_code >= 500:
            db.session.rollback()  # nothing of a failed request is kept, nor its key
            return response
        return commit(response, claim)

    wrapper.idempotent = True  # type: ignore[attr-defined]  # the OpenAPI document declares the header
    return wrapper


def request_claim() -> idempotency.Claim | None:
    """The request's claim: on its Idempotency-Key (422 for a malformed one), else on its
    signature (None for a request that was not signed, such as a test's)."""
    key = request.headers.get("Idempotency-Key")
    if key is not None:
        if not key or len(key) > 255 or key.startswith(idempotency.SIGNATURE_KEY_PREFIX):
            raise ApiProblem(
                422,
                "Validation failed",
                "Idempotency-Key must be 1–255 characters and must not "
                f"start with {idempotency.SIGNATURE_KEY_PREFIX!r}.",
                type="validation-failed",
            )
        req_hash = idempotency.request_hash(request.method, request.path, _fingerprint())
        return idempotency.Claim(g.tenant_id, key, req_hash)
    digest = g.get("signature_digest")
    if digest is None:
        return None
    # The signature covers the method, the target and the body: it is the request's hash too.
    return idempotency.signature_claim(g.tenant_id, digest, digest, auth.signature_window())


def failed(claim: idempotency.Claim | None, err: Exception) -> Response:
    """The answer to a request whose view raised `err`, after rolling its work back: the
    stored answer of a twin that committed meanwhile; for a write keyed by its signature, the
    refusal (4xx but 429), recorded so that the same request sent again gets it again; or `err`
    raised."""
    db.session.rollback()
    # The view may have failed on a twin's committed work (a job it cancelled, a row it
    # inserted): when the twin's answer is there, that is the answer.
    twin = twin_answer(claim)
    if twin is not None:
        return twin
    problem = as_problem(err)
    # A 429 is about the moment, not the request: the same request later is a new try.
    if claim is None or not claim.implicit or problem is None or problem.status >= 500 or problem.status == 429:
        raise err
    return commit(problem.response(), claim)


def commit(response: Response, claim: idempotency.Claim | None) -> Response:
    """Store the request's idempotency record with its work, and commit (or answer as the
    twin that stored the key first)."""
    try:
        if claim is not None:
            stored = idempotency.store(
                claim,
                response.status_code,
                response.get_json(silent=True, force=True),
                replayed_headers(response),
                sealed=bool(g.get("sealed_response")),
            )
            if not stored:  # a twin with this key committed first: answer as it did
                db.session.rollback()
                twin = twin_answer(claim)
                if twin is not None:
                    return twin
                raise RuntimeError("an Idempotency-Key record vanished while its twin request ran")
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return response


def twin_answer(claim: idempotency.Claim | None) -> Response | None:
    """After a rollback: the stored answer of a request with the same key that committed
    meanwhile, or None."""
    if claim is None:
        return None
    try:
        found = look_up(claim)
    except ApiProblem:  # the key answered another request meanwhile (422)
        raise
    except Exception:  # the database that failed the request fails this too: report the first
        db.session.rollback()
        return None
    return replayed(found) if isinstance(found, idempotency.Replay) else None


def look_up(claim: idempotency.Claim) -> idempotency.Replay | idempotency.Claim:
    try:
        return idempotency.lookup(claim)
    except idempotency.KeyReused:
        raise ApiProblem(
            422,
            "Idempotency key reused",
            "This Idempotency-Key was used with a different request.",
            type="idempotency-key-reused",
        ) from None


def replayed_headers(response: Response) -> dict[str, str]:
    """The response's headers a replay repeats."""
    return {h: response.headers[h] for h in REPLAYED_HEADERS if h in response.headers}


def replayed(replay: idempotency.Replay) -> Response:
    """The stored answer, marked as replayed."""
    db.session.rollback()  # ends the lookup's read
    mimetype = "application/problem+json" if replay.status >= 400 else "application/json"
    response = Response(json.dumps(replay.body), status=replay.status, mimetype=mimetype)
    response.headers.update(replay.headers)
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _fingerprint() -> bytes:
    """The body as the Idempotency-Key compares it. Multipart bodies by their content: a client
    retrying an upload encodes it again with a new boundary."""
    if request.mimetype != "multipart/form-data":
        return request.get_data(cache=True)
    # A part's name can be missing (werkzeug gives None for a malformed one): sort it as "".
    parts: list[Any] = sorted((k or "", v) for k, v in request.form.items(multi=True))
    for field, upload in sorted(request.files.items(multi=True), key=lambda item: item[0] or ""):
        parts.append((field, upload.filename, _sha256(upload.stream)))
    return json.dumps(parts).encode()


def _sha256(stream: Any) -> str:
    """A part's SHA-256: from the stream when it hashed itself as it was written (scan
    storage's Incoming), else read once."""
    hashed = getattr(stream, "sha256", None)
    if callable(hashed):
        return str(hashed())
    stream.seek(0)
    digest = hashlib.sha256(stream.read()).hexdigest()
    stream.seek(0)
    return digest


def json_value() -> Any:
    """The request's JSON value, or a 415/400/422 problem."""
    if not request.is_json:
        raise ApiProblem(415, "Unsupported media type", "Send Content-Type: application/json.")
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser goes
        data = None
    if data is None:
        raise ApiProblem(400, "Malformed JSON", "The request body is not valid JSON.", type="malformed-json")
    problem = unstorable(data)
    if problem is not None:
        raise validation_failed({"_schema": [problem]})
    return data


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 415/400/422 problem."""
    data = json_value()
    if not isinstance(data, dict):
        raise ApiProblem(422, "Validation failed", "The request body must be a JSON object.", type="validation-failed")
    return data
