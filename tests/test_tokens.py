"""Bearer tokens: the signature is verified once per process (cached), the expiry on every use."""

from __future__ import annotations

import datetime as dt

import pytest

from gridcity import security
from gridcity.errors import NotAuthenticated

SECRET = "s" * 48


def test_a_cached_token_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    token = security.create_token(user_id=7, role="dispatcher", secret=SECRET, ttl=dt.timedelta(minutes=5))
    assert security.decode_token(token, secret=SECRET)["sub"] == "7"
    assert security.decode_token(token, secret=SECRET)["sub"] == "7"  # the second check comes from the cache
    later = security.time.time() + 301
    monkeypatch.setattr(security.time, "time", lambda: later)
    with pytest.raises(NotAuthenticated) as err:
        security.decode_token(token, secret=SECRET)
    assert err.value.code == "auth.token_expired"


def test_a_token_checked_under_one_key_is_not_accepted_under_another() -> None:
    token = security.create_token(user_id=7, role="dispatcher", secret=SECRET, ttl=dt.timedelta(minutes=5))
    security.decode_token(token, secret=SECRET)
    with pytest.raises(NotAuthenticated) as err:
        security.decode_token(token, secret="another-key-" + "x" * 40)
    assert err.value.code == "auth.invalid_token"


def test_changing_the_returned_claims_does_not_change_the_cached_ones() -> None:
    token = security.create_token(user_id=7, role="dispatcher", secret=SECRET, ttl=dt.timedelta(minutes=5))
    security.decode_token(token, secret=SECRET)["sub"] = "1"
    assert security.decode_token(token, secret=SECRET)["sub"] == "7"
