"""What the API fuzz (tests/test_api_fuzz.py) found, pinned down on SQLite and PostgreSQL: input the
OpenAPI document does not promise is a 4xx problem (never a 500), and every answer is declared."""

from __future__ import annotations

import base64

from urllib3 import encode_multipart_formdata

PLAN = {"name": "Daily", "price": "50", "duration": "1d"}


def nested(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels):
        value = {"a": value}
    return value


def test_nul_characters_are_refused_wherever_they_are_sent(api):
    """PostgreSQL text cannot hold U+0000: it was a 500 in a path, a query, a body and a cursor."""
    assert api.get("/api/v1/jobs/%00abc").status_code == 404
    assert api.get("/api/v1/webhook-endpoints/%00").status_code == 404
    assert api.get("/api/v1/jobs?type=%00").status_code == 422
    assert api.get("/api/v1/emails?to=a%00b").status_code == 422
    forged = base64.urlsafe_b64encode(b"2020-01-01T00:00:00+00:00|\x00").decode()
    assert api.get(f"/api/v1/jobs?cursor={forged}").get_json()["errors"] == {"cursor": ["Invalid cursor."]}
    job = api.post("/api/v1/jobs", {"type": "system.echo", "payload": {"message": "a\x00b"}})
    assert job.status_code == 422 and job.get_json()["errors"] == {
        "_schema": ["Text must not contain NUL characters (U+0000)."]
    }
    assert api.post("/api/v1/emails", [{"to": "a@example.com", "subject": "\x00", "text": "x"}]).status_code == 422
    assert api.post("/api/v1/plans", {**PLAN, "name": "a\x00"}).status_code == 422
    assert api.post("/api/v1/events", {"type": "a", "payload": {"\x00": 1}}).status_code == 422


def test_lone_surrogates_are_refused(api):
    """JSON may escape a lone surrogate ("\\ud800"), which no UTF-8 text can hold: it was a 500
    when the job was stored (PostgreSQL) and when an event's body was built."""
    for path, body in (
        ("/api/v1/jobs", b'{"type": "system.echo", "payload": {"message": "a\\ud800"}}'),
        ("/api/v1/events", b'{"type": "a", "payload": {"\\udfff": 1}}'),
    ):
        response = api.post(path, data=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422 and "lone surrogate" in response.get_json()["errors"]["_schema"][0]
    paired = b'{"type": "system.echo", "payload": {"message": "\\ud83d\\ude00"}}'  # an escaped pair is fine
    response = api.post("/api/v1/jobs", data=paired, headers={"Content-Type": "application/json"})
    assert response.status_code == 202


def test_json_nested_past_the_limit_is_refused(api):
    """Too deep for the parser was a 500 (RecursionError); deep enough to fail when stored, too."""
    assert api.post("/api/v1/jobs", data=b"[" * 100_000 + b"]" * 100_000).status_code == 400
    deep = api.post("/api/v1/events", {"type": "a", "payload": nested(100)})
    assert deep.status_code == 422 and "64 levels" in deep.get_json()["errors"]["_schema"][0]
    assert api.post("/api/v1/events", {"type": "a", "payload": nested(60)}).status_code == 202


def test_a_multipart_part_without_a_name_is_not_a_500(api):
    """werkzeug reads `name="\\"` as no name; sorting the parts for the Idempotency-Key failed."""
    body, content_type = encode_multipart_formdata({"file": ("a.txt", b"hello")})
    boundary = content_type.split("boundary=")[1]
    extra = f'--{boundary}\r\nContent-Disposition: form-data; name="\\"\r\n\r\nx\r\n'.encode()
    response = api.request(
        "POST",
        "/api/v1/scans",
        data=extra + body,
        headers={"Content-Type": content_type, "Idempotency-Key": "upload-1"},
    )
    assert response.status_code == 202, response.get_json()


def test_a_405_names_the_allowed_methods(api):
    response = api.request("PUT", "/api/v1/jobs")
    assert response.status_code == 405 and response.mimetype == "application/problem+json"
    assert {"GET", "POST"} <= set(response.headers["Allow"].split(", "))


def test_booleans_numbers_and_durations_are_what_the_document_says(api):
    """marshmallow took 0, "yes", "5" and " 1 d"; the document promises booleans, integers and a pattern."""
    wrong_fields = [
        {"active": 0},
        {"active": "yes"},
        {"shared_users": "2"},
        {"price": 0.001},
        {"price": "1e3"},
        {"duration": "1 d"},
        {"duration": 10**12},
        {"duration": "1000w"},
        {"uptime_limit": "1h" * 20},
    ]
    for wrong in wrong_fields:
        assert api.post("/api/v1/plans", {**PLAN, **wrong}).status_code == 422, wrong
    plan = api.post("/api/v1/plans", {**PLAN, "price": 0.005, "duration": "999w", "active": False}).get_json()
    assert plan["price"] == "0.01" and plan["duration_seconds"] == 999 * 7 * 86400 and plan["active"] is False
    assert api.post("/api/v1/jobs", {"type": "system.echo", "delay_seconds": "5"}).status_code == 422
    assert api.post("/api/v1/jobs", {"type": "system.echo", "max_attempts": "2"}).status_code == 422


def test_a_null_profile_in_a_plan_change_is_the_default_profile(api):
    """It was written as NULL into a NOT NULL column: a 500."""
    plan = api.post("/api/v1/plans", {**PLAN, "profile": "custom"}).get_json()
    changed = api.patch(f"/api/v1/plans/{plan['id']}", {"profile": None})
    assert changed.status_code == 200 and changed.get_json()["profile"] == "opsdeck-Daily"


def test_answers_carry_the_values_the_document_declares(api):
    """A queued mail's attempts were null until the row was read again."""
    assert api.post("/api/v1/emails", {"to": "a@example.com", "subject": "s", "text": "t"}).get_json()["attempts"] == 0


def test_the_document_declares_every_answer_and_no_default(app):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert "default" not in codes, (method, path)
            if path != "/payments/mpesa/callback/{token}":
                assert {"401", "429"} <= codes, (method, path)
            if "requestBody" in operation and method != "delete":
                assert {"400", "413", "422"} <= codes, (method, path)
            if "{" in path:
                assert {"404", "414"} <= codes, (method, path)
    callback = spec["paths"]["/payments/mpesa/callback/{token}"]["post"]
    assert callback["security"] == [] and "401" not in callback["responses"]
    cancel = spec["paths"]["/jobs/{job_id}/cancel"]["post"]
    key = next(p for p in cancel["parameters"] if p["name"] == "Idempotency-Key")
    assert key["schema"] == {"type": "string", "minLength": 1, "maxLength": 255}
    assert {"409", "422"} <= set(cancel["responses"])
    assert {"200", "202"} <= set(spec["paths"]["/events"]["post"]["responses"])  # 200: a known client id
