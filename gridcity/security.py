"""Password hashing (argon2), bearer tokens (JWT, HS256, with expiry) and the failed-login throttle."""

from __future__ import annotations

import datetime as dt
import functools
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gridcity.errors import NotAuthenticated, TooManyRequests

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


@functools.lru_cache(maxsize=4096)
def _signed_claims(token: str, secret: str) -> dict[str, Any]:
    """The claims of a token whose signature and shape check out; its expiry is checked on every use.

    Cached: a request's token is checked twice (the request guard, then the user lookup), and a client sends
    the same token for hours, so the signature is verified once per process instead of on every request. Only
    tokens that verify are kept (a failure raises, and ``lru_cache`` keeps no exception).
    """
    claims: dict[str, Any] = jwt.decode(
        token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"], "verify_exp": False}
    )
    return claims


def decode_token(token: str, *, secret: str) -> dict[str, Any]:
    """The token's claims; 401 when expired, forged or malformed."""
    try:
        claims = _signed_claims(token, secret)
    except jwt.PyJWTError as exc:
        raise NotAuthenticated("invalid token", code="auth.invalid_token") from exc
    exp = claims["exp"]
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise NotAuthenticated("invalid token", code="auth.invalid_token")
    if exp <= time.time():  # as PyJWT judges it (no leeway)
        raise NotAuthenticated("token expired", code="auth.token_expired")
    return dict(claims)


class LoginThrottle:
    """Failed logins per account and per client address in a sliding window, in this process.

    Once an account had ``per_account`` failed logins within ``window_s`` seconds, or an address had
    ``per_address``, the next attempts answer 429 ``auth.too_many_attempts`` (with ``Retry-After``) before
    any password is checked, until the oldest failure leaves the window. A successful login clears the
    account's failures (not the address's: many users may share one office address). Counts are per server
    process, so with N workers an attacker gets at most N times the limits. Account names are compared
    case-folded. Thread-safe.
    """

    MAX_KEYS = 100_000  # beyond this many tracked names/addresses, expired ones are swept

    def __init__(
        self, *, per_account: int, per_address: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_account = per_account
        self.per_address = per_address
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q:
            del self._failures[key]
        return q

    def check(self, username: str, address: str) -> None:
        """Raise ``TooManyRequests`` (429) when the account or the address is over its limit."""
        now = self._clock()
        with self._lock:
            limits = ((("user", username.casefold()), self.per_account), (("addr", address), self.per_address))
            for key, limit in limits:
                q = self._recent(key, now)
                if len(q) >= limit:
                    retry = max(1, math.ceil(q[len(q) - limit] + self.window_s - now))
                    raise TooManyRequests(
                        "too many failed logins; try again later",
                        code="auth.too_many_attempts",
                        loc=["body", "username"] if key[0] == "user" else [],
                        extra={"retry_after": retry},
                    )

    def failed(self, username: str, address: str) -> None:
        """Count one failed login against the account and the address."""
        now = self._clock()
        with self._lock:
            if len(self._failures) > self.MAX_KEYS:
                for key in list(self._failures):
                    self._recent(key, now)
            for key in (("user", username.casefold()), ("addr", address)):
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, username: str) -> None:
        """Forget the account's failures."""
        with self._lock:
            self._failures.pop(("user", username.casefold()), None)
