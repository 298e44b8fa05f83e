"""The SMTP connection settings against a real server: STARTTLS and implicit TLS with the
relay's certificate verified (SMTP_CA_FILE), and AUTH with SMTP_USERNAME / SMTP_PASSWORD."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.extensions import db
from app.models import Email
from app.services.email import batches, mails
from tests.fakes.smtp_sink import SmtpSink


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the CA file the client is told to trust)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opsdeck-test-relay")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "relay.pem", folder / "relay.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def server_context(certificate) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def send_one(app, tenant_id: str, **config) -> Email:
    app.config.update(EMAIL_RATE_PER_MINUTE=0, EMAIL_DELAY=0, **config)
    (row,) = mails.submit(tenant_id, [mails.NewMail(to="ana@example.com", subject="Hi", text="Hello")])
    db.session.commit()
    batches.flush("test", budget=10)
    db.session.expire_all()
    return db.session.get(Email, row.id)


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "ssl"])
def test_tls_with_login(app, tenant, certificate, implicit):
    sink = SmtpSink(
        tls=server_context(certificate), implicit_tls=implicit, credentials=("relay-user", "s3cret")
    ).start()
    try:
        row = send_one(
            app,
            tenant.tenant_id,
            SMTP_PORT=sink.port,
            SMTP_SECURITY="ssl" if implicit else "starttls",
            SMTP_CA_FILE=str(certificate[0]),
            SMTP_USERNAME="relay-user",
            SMTP_PASSWORD="s3cret",
        )
        assert row.status == "sent", row.last_error
        assert sink.logins == ["relay-user"] and len(sink.received) == 1
    finally:
        sink.close()


def test_an_untrusted_certificate_is_refused(app, tenant, certificate):
    sink = SmtpSink(tls=server_context(certificate)).start()
    try:
        row = send_one(app, tenant.tenant_id, SMTP_PORT=sink.port, SMTP_SECURITY="starttls", SMTP_CA_FILE="")
        assert row.status == "retrying" and "CERTIFICATE_VERIFY_FAILED" in row.last_error and sink.received == []
    finally:
        sink.close()


def test_a_wrong_password_retries_the_batch(app, tenant, certificate):
    sink = SmtpSink(tls=server_context(certificate), credentials=("relay-user", "s3cret")).start()
    try:
        row = send_one(
            app,
            tenant.tenant_id,
            SMTP_PORT=sink.port,
            SMTP_SECURITY="starttls",
            SMTP_CA_FILE=str(certificate[0]),
            SMTP_USERNAME="relay-user",
            SMTP_PASSWORD="wrong",
        )
        assert row.status == "retrying" and "Authentication" in row.last_error and sink.received == []
    finally:
        sink.close()
