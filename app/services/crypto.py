"""Encryption at rest for secrets (API key secrets, later webhook and router secrets)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app


class EncryptionNotConfigured(RuntimeError):
    pass


def _multifernet() -> MultiFernet:
    cached = current_app.extensions.get("opsdeck_fernet")
    if cached is None:
        keys = current_app.config.get("OPSDECK_ENCRYPTION_KEYS") or []
        if not keys:
            raise EncryptionNotConfigured("OPSDECK_ENCRYPTION_KEYS is empty")
        cached = MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])
        current_app.extensions["opsdeck_fernet"] = cached
    return cached


def encrypt(plaintext: str) -> bytes:
    """Encrypt with the first configured key."""
    return _multifernet().encrypt(plaintext.encode())


def decrypt(ciphertext: bytes) -> str:
    """Decrypt with any configured key; raises InvalidToken when none fits."""
    return _multifernet().decrypt(bytes(ciphertext)).decode()


#: Decrypted secrets kept per app, by ciphertext (a new or rotated secret is a new ciphertext),
#: so hot paths (every signed request, every webhook send) do not pay a Fernet decryption each
#: time; at most this many.
KEPT = 1024


def decrypt_kept(ciphertext: bytes) -> str:
    """`decrypt`, remembered for this process."""
    kept: dict[bytes, str] = current_app.extensions.setdefault("opsdeck_decrypted", {})
    key = bytes(ciphertext)
    plaintext = kept.get(key)
    if plaintext is None:
        if len(kept) >= KEPT:
            kept.clear()
        plaintext = kept[key] = decrypt(key)
    return plaintext


def reencrypt(ciphertext: bytes) -> bytes:
    """Re-encrypt under the first key (after a key rotation)."""
    return _multifernet().rotate(bytes(ciphertext))


def generate_key() -> str:
    return Fernet.generate_key().decode()


__all__ = ["EncryptionNotConfigured", "InvalidToken", "decrypt", "encrypt", "generate_key", "reencrypt"]
