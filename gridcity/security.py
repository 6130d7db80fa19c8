"""Password hashing (argon2) and bearer tokens (JWT, HS256, with expiry)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gridcity.errors import NotAuthenticated

_hasher = PasswordHasher()
# A hash to verify against when the user does not exist, so that timing does not tell.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether ``password`` matches; constant work when there is no user."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def create_token(*, user_id: int, role: str, secret: str, ttl: dt.timedelta) -> str:
    """A signed token naming the user and role, valid for ``ttl``."""
    now = dt.datetime.now(dt.UTC)
    payload = {"sub": str(user_id), "role": role, "iat": now, "exp": now + ttl}
    return jwt.encode(payload, secret, algorithm="HS256")


def decode_token(token: str, *, secret: str) -> dict[str, Any]:
    """The token's claims; 401 when expired, forged or malformed."""
    try:
        claims: dict[str, Any] = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError as exc:
        raise NotAuthenticated("token expired", code="auth.token_expired") from exc
    except jwt.PyJWTError as exc:
        raise NotAuthenticated("invalid token", code="auth.invalid_token") from exc
    return claims
