"""Admin users: argon2id password hashes, roles."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select

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


#: Verified when the email is unknown, so a miss costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash("opsdeck-no-such-user")


def authenticate(email: str, password: str) -> User | None:
    """The active user with this email and password, or None."""
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        verify_password(User(password_hash=_DUMMY_HASH), password)
        return None
    if not verify_password(user, password) or not user.active:
        return None
    return user


def load_session_user(session_id: str) -> User | None:
    """Flask-Login's loader: "<id>.<session_version>"; a bumped version ends old sessions."""
    user_id, _, version = session_id.partition(".")
    if not user_id.isdigit() or not version.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.active or user.session_version != int(version):
        return None
    return user


def record_login(user: User, *, ip: str | None) -> None:
    from app.models.base import utcnow

    user.last_login_at = utcnow()
    audit.record(f"user:{user.email}", "user.login", target=user.email, ip=ip)
    db.session.commit()


def set_active(user: User, active: bool, *, actor: str) -> User:
    """(De)activate an operator. Deactivation ends every session and live connection; the last
    active admin cannot be deactivated. Commits."""
    if not active:
        guard_deactivation(user)
    user.active = active
    if not active:
        user.session_version += 1
    audit.record(actor, "user.activate" if active else "user.deactivate", target=user.email)
    db.session.commit()
    if not active:
        from app import live

        live.end_user(user.id)
    return user


def set_role(user: User, role: str, *, actor: str) -> User:
    """Change an operator's role. The last active admin keeps theirs. Commits."""
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if user.role == role:
        return user
    if user.role == "admin" and _is_last_admin(user):
        raise UserError("the last active admin cannot lose the admin role")
    audit.record(actor, "user.role", target=user.email, details={"from": user.role, "to": role})
    user.role = role
    db.session.commit()
    return user


def _is_last_admin(user: User) -> bool:
    others = db.session.scalar(
        select(func.count()).select_from(User).where(User.role == "admin", User.active.is_(True), User.id != user.id)
    )
    return not others


def guard_deactivation(user: User) -> None:
    """Refuse to lock everyone out: the last active admin stays active."""
    if user.active and user.role == "admin" and _is_last_admin(user):
        raise UserError("the last active admin cannot be deactivated")


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.email)))


def find(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email.strip().lower()))
