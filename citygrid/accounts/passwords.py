"""Password hashing with Argon2id (argon2-cffi's defaults, RFC 9106's second recommended profile) and the
password rule. Pure functions; no database."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from citygrid.errors import InvalidInput

MIN_LENGTH = 10
MAX_LENGTH = 256
_HASHER = PasswordHasher()
# Verified against when the user does not exist, so a wrong username costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash("citygrid-no-such-user")


def check_rule(password: str) -> str:
    """Return ``password`` if it is acceptable (10–256 characters, not all one character), else ``InvalidInput``."""
    if not isinstance(password, str) or not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InvalidInput(f"a password must be {MIN_LENGTH}–{MAX_LENGTH} characters", field="password")
    if len(set(password)) < 4:
        raise InvalidInput("a password needs at least four different characters", field="password")
    return password


def hash_password(password: str) -> str:
    return _HASHER.hash(check_rule(password))


def verify(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash`` (None: no password set, always False, same cost)."""
    try:
        return _HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _HASHER.check_needs_rehash(stored_hash)
