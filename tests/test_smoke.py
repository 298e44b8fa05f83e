def test_healthz(app):
    assert app.test_client().get("/healthz").json == {"status": "ok"}
