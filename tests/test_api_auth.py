"""Request signing: what is accepted and every way a request is refused."""

from __future__ import annotations

import json
import re
import time

import pytest

from app.services import tenants

JOB = {"type": "system.echo", "payload": {"message": "hi"}}


def assert_unauthorized(response):
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 401 and body["title"] == "Unauthorized"
    # No hint of which check failed.
    assert body["detail"] == "Request authentication failed."


def test_valid_signature_is_accepted(api):
    response = api.post("/api/v1/jobs", JOB)
    assert response.status_code == 202, response.get_json()


def test_query_string_is_part_of_the_signature(api):
    assert api.get("/api/v1/jobs?status=pending&limit=5").status_code == 200
    assert_unauthorized(api.get("/api/v1/jobs?status=pending&limit=5", sign_path="/api/v1/jobs?status=pending"))


def test_tampered_body_is_refused(api):
    assert_unauthorized(api.post("/api/v1/jobs", JOB, sign_body=b'{"type": "system.echo"}'))


@pytest.mark.parametrize("skew", [-305, 305, 3600])
def test_timestamp_outside_tolerance_is_refused(api, skew):
    # The tolerance is 300 s. Timestamps are whole seconds, so a skew of 301 from a truncated
    # time.time() can land inside it once the request itself takes a moment (it failed CI once):
    # five seconds of margin keep the case about the tolerance, not about the clock.
    assert_unauthorized(api.post("/api/v1/jobs", JOB, timestamp=int(time.time()) + skew))


def test_timestamp_inside_tolerance_is_accepted(api):
    assert api.post("/api/v1/jobs", JOB, timestamp=int(time.time()) - 250).status_code == 202


def test_a_write_with_several_signature_values_is_keyed_by_its_valid_one(api, tenant, caplog):
    """Any valid `v1=` value passes, and the valid one keys the write: a value used before,
    beside a fresh valid one, does not make the request a repeat of the earlier one."""
    from opsdeck_client import signature

    def send(ts: int, *values: str) -> tuple[int, list[str], str]:
        """Post with these v1= values ("valid": this request's own signature); the status, the
        logged refusals and the valid signature."""
        body = {**JOB, "payload": {"message": f"at {ts}"}}
        valid = signature(tenant.secret, str(ts), "POST", "/api/v1/jobs", json.dumps(body).encode())
        header = " ".join(f"v1={valid if v == 'valid' else v}" for v in values)
        caplog.clear()
        status = api.post("/api/v1/jobs", body, timestamp=ts, headers={"Opsdeck-Signature": header}).status_code
        return status, [r.reason for r in caplog.records if r.name == "opsdeck.api.auth"], valid

    now = int(time.time())
    status, refusals, used = send(now, "0" * 64, "valid")  # a wrong value beside the valid one
    assert (status, refusals) == (202, [])
    assert send(now - 1, "valid", "f" * 64)[:2] == (202, [])  # a value never used passes
    assert send(now - 2, used, "valid")[:2] == (202, [])  # used, beside a fresh one: a new request
    assert send(now - 3, "valid", "valid", "VALID")[:2] == (202, [])  # repeats count once
    assert send(now - 4, *(f"{n:064x}" for n in range(4)), "valid")[:2] == (401, ["too many signature values"])
    from app.extensions import db
    from app.models import Job

    assert db.session.query(Job).count() == 4  # each accepted request made its own job


def test_signature_for_another_method_or_path_is_refused(api):
    assert_unauthorized(api.post("/api/v1/jobs", JOB, sign_method="PUT"))
    assert_unauthorized(api.get("/api/v1/jobs", sign_path="/api/v1/jobs/other"))


def test_wrong_secret_unknown_key_and_missing_headers_are_refused(api):
    assert_unauthorized(api.post("/api/v1/jobs", JOB, secret="sk_wrong"))
    assert_unauthorized(api.post("/api/v1/jobs", JOB, key_id="key_doesnotexist"))
    assert_unauthorized(api.client.post("/api/v1/jobs", json=JOB))
    assert_unauthorized(api.post("/api/v1/jobs", JOB, headers={"Opsdeck-Timestamp": "soon"}))


def test_revoked_key_is_refused(api, tenant):
    assert api.get("/api/v1/jobs").status_code == 200
    tenants.revoke_key(tenant.key_id)
    assert_unauthorized(api.get("/api/v1/jobs"))


def test_rotation_without_grace_revokes_the_old_key_at_once(app, api, tenant):
    from datetime import timedelta

    from tests.conftest import SignedClient

    issued = tenants.rotate_key(tenants.find_tenant("acme"), grace=timedelta(0))
    assert_unauthorized(api.get("/api/v1/jobs"))
    assert SignedClient(app, issued.key_id, issued.secret).get("/api/v1/jobs").status_code == 200


def test_rotated_key_keeps_working_for_the_grace_then_stops(app, api, tenant):
    from datetime import timedelta

    from app.extensions import db
    from app.models import ApiKey
    from app.models.base import utcnow
    from tests.conftest import SignedClient

    issued = tenants.rotate_key(tenants.find_tenant("acme"), grace=timedelta(hours=2))
    assert api.get("/api/v1/jobs").status_code == 200  # old key, inside the grace
    assert SignedClient(app, issued.key_id, issued.secret).get("/api/v1/jobs").status_code == 200
    old = db.session.get(ApiKey, tenant.key_id)
    assert timedelta(hours=1.9) < old.expires_at - utcnow() <= timedelta(hours=2)
    old.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert_unauthorized(api.get("/api/v1/jobs?after=grace"))


def test_any_one_of_several_signatures_passes(api):
    ts = str(int(time.time()))
    from opsdeck_client import signature

    good = signature(api.secret, ts, "GET", "/api/v1/jobs", b"")
    headers = {"Opsdeck-Timestamp": ts, "Opsdeck-Signature": f"v1={'0' * 64} v1={good}"}
    assert api.get("/api/v1/jobs", headers=headers).status_code == 200
    headers = {"Opsdeck-Timestamp": ts, "Opsdeck-Signature": f"v0={good}"}
    assert_unauthorized(api.get("/api/v1/jobs", headers=headers))


def test_last_used_is_recorded(api, tenant):
    from app.extensions import db
    from app.models import ApiKey

    assert db.session.get(ApiKey, tenant.key_id).last_used_at is None
    api.get("/api/v1/jobs")
    db.session.expire_all()
    assert db.session.get(ApiKey, tenant.key_id).last_used_at is not None


def test_secret_is_encrypted_at_rest(app, tenant):
    from app.extensions import db
    from app.models import ApiKey

    key = db.session.get(ApiKey, tenant.key_id)
    assert tenant.secret.encode() not in key.secret_encrypted
    assert tenant.secret not in repr(key)


def test_openapi_is_public_and_documents_every_api_route(app):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert {"/jobs", "/jobs/{job_id}", "/jobs/{job_id}/cancel", "/jobs/{job_id}/retry"} <= set(spec["paths"])
    assert spec["paths"]["/jobs"]["post"]["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Job"
    }
    routes = {
        (re.sub(r"<[a-z]+:", "<", rule.rule.removeprefix("/api/v1")), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.") and rule.endpoint != "api.openapi"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {
        (path.replace("{", "<").replace("}", ">"), method) for path, ops in spec["paths"].items() for method in ops
    }
    assert routes == documented
    from openapi_spec_validator import validate

    validate(spec)  # a valid OpenAPI 3 document
