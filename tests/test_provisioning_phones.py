"""Phone numbers in the forms platforms, Daraja and Kenyan customers write them: each is kept as
E.164 (`+254712345678`), so the payment, its callback and the subscriber meet on one number;
what cannot be a phone is a 422 naming the forms that are."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Payment, Subscriber
from app.services.provisioning import phones
from tests import test_provisioning as base
from tests.helpers import fresh
from tests.test_provisioning import call_back, run_all, stk_callback

# The provisioning suite's fixtures: a RouterOS test server and a tenant's router and plan.
app_config, mikrotik, shop = base.app_config, base.mikrotik, base.shop

CANONICAL = "+254712345678"
FORMS = [
    "+254712345678",
    "+254 712 345 678",
    "254712345678",  # Daraja's MSISDN
    "254-712-345-678",
    "0712345678",
    "0712 345 678",
    " 0712-345-678 ",
]
NOT_PHONES = [
    "",
    "712345678",  # the 0 forgotten: not read as +7…
    "hello",
    "+0712345678",
    "0712",
    "2540712345678",  # the country code and the national 0 together
    "+254712345678901234",  # over E.164's 15 digits
    "0712345678\n",
    "+254 (712) 345678",
    "٠٧١٢٣٤٥٦٧٨",  # Arabic-Indic digits
    "0712345678" + " " * 30,  # over the length limit
]


@pytest.mark.parametrize("raw", FORMS)
def test_every_accepted_form_is_read_as_e164(raw):
    assert phones.normalise(raw, "254") == CANONICAL


@pytest.mark.parametrize("raw", NOT_PHONES)
def test_what_cannot_be_a_phone_is_refused_naming_the_forms(raw):
    with pytest.raises(phones.InvalidPhone, match=r"\+254712345678 .*254712345678 .*0712345678"):
        phones.normalise(raw, "254")


def test_the_national_form_belongs_to_the_default_country_code():
    assert phones.normalise("0712345678", "255") == "+255712345678"
    assert phones.normalise("+254712345678", "255") == CANONICAL  # E.164 is any country's
    with pytest.raises(phones.InvalidPhone):  # digits without a plus: the default country's only
        phones.normalise("254712345678", "255")


def test_the_setting_gives_the_default_country_code(app):
    app.config["PHONE_DEFAULT_COUNTRY_CODE"] = "256"
    assert phones.normalise("0712345678") == "+256712345678"


def register(api, shop, checkout: str, phone: str):
    body = {"checkout_request_id": checkout, "plan_id": shop["plan"]["id"], "router_id": shop["router"]["id"]}
    return api.post("/api/v1/payments", {**body, "phone": phone})


def test_each_form_is_stored_as_e164_and_makes_one_subscriber(app, api, shop):
    for n, raw in enumerate(FORMS):
        answer = register(api, shop, f"ws_CO_{n}", raw)
        assert answer.status_code == 201, answer.get_json()
        assert answer.get_json()["phone"] == CANONICAL
        assert fresh(Payment, answer.get_json()["id"]).phone == CANONICAL
        manual = {"plan_id": shop["plan"]["id"], "router_id": shop["router"]["id"], "phone": raw}
        assert api.post("/api/v1/subscriptions", manual).status_code == 201
    db.session.rollback()
    assert db.session.scalars(select(Subscriber.phone)).all() == [CANONICAL]


def test_a_daraja_callback_matches_the_payment_made_with_the_national_form(app, api, shop, admin):
    payment = register(api, shop, "ws_CO_1", "0712345678").get_json()
    answer = call_back(app, shop, stk_callback("ws_CO_1", phone=254712345678))
    assert answer.status_code == 200
    run_all("payment.process")
    row = fresh(Payment, payment["id"])
    assert row.status == "processed" and row.phone == row.paid_phone == CANONICAL
    # The customer who paid is the subscriber a manual subscription with another form names.
    manual = {"plan_id": shop["plan"]["id"], "router_id": shop["router"]["id"], "phone": "+254 712 345 678"}
    assert api.post("/api/v1/subscriptions", manual).status_code == 201
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 1
    page = admin.get(f"/admin/provisioning/payments/{payment['id']}").text
    assert CANONICAL in page and "paid from" not in page
    found = admin.get("/admin/provisioning/subscribers", query_string={"phone": "0712 345 678"}).text
    assert "data-subscriber-id" in found and CANONICAL in found


def test_a_callback_phone_that_is_not_a_phone_keeps_the_payment_going(app, api, shop):
    payment = register(api, shop, "ws_CO_1", CANONICAL).get_json()
    assert call_back(app, shop, stk_callback("ws_CO_1", phone="not-a-number")).status_code == 200
    row = fresh(Payment, payment["id"])
    assert row.status == "processing" and row.paid_phone is None and "not-a-number" in row.raw_callback


@pytest.mark.parametrize("path", ["/api/v1/payments", "/api/v1/subscriptions"])
def test_garbage_is_a_422_naming_the_accepted_forms(app, api, shop, path):
    body = {"checkout_request_id": "ws_CO_1", "plan_id": shop["plan"]["id"], "router_id": shop["router"]["id"]}
    for raw in ["712345678", "call me", "+254-712-345-678-999-999", 254712345678]:
        answer = api.post(path, {**body, "phone": raw})
        assert answer.status_code == 422 and answer.mimetype == "application/problem+json", raw
        (message,) = answer.get_json()["errors"]["phone"]
        if isinstance(raw, str):
            assert all(form in message for form in ("+254712345678", "254712345678", "0712345678")), message


def test_the_openapi_document_states_the_accepted_forms(app, api):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    schema = spec["components"]["schemas"]["Payment"]["properties"]["phone"]
    assert schema["maxLength"] == phones.MAX_LENGTH
    for raw in FORMS:
        assert re.fullmatch(schema["pattern"], raw), raw
    for raw in NOT_PHONES:
        assert len(raw) > schema["maxLength"] or not re.fullmatch(schema["pattern"], raw), raw
