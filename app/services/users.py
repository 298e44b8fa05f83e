"""Admin users: argon2id password hashes, roles."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from app.extensions import db
from app.models import User
from app.models.users import ROLES
from app.services import audit

_hasher = PasswordHasher()


class UserError(ValueError):
    pass


def create_user(email: str, password: str, role: str = "viewer", *, actor: str = "cli") -> User:
    """Create an operator account. Commits."""
    email = email.strip().lower()
    if "@" not in email:
        raise UserError("email must be an address")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 10:
        raise UserError("password must be at least 10 characters")
    if db.session.scalar(select(User).where(User.email == email)) is not None:
        raise UserError(f"user {email} already exists")
    user = User(email=email, password_hash=_hasher.hash(password), role=role)
    db.session.add(user)
    audit.record(actor, "user.create", target=email, details={"role": role})
    db.session.commit()
    return user


def verify_password(user: User, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
