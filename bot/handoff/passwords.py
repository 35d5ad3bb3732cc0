"""Agent password hashing with the standard library's scrypt.

Stored form: ``scrypt$16384$8$1$<salt, base64>$<key, base64>`` (n, r, p, a 16-byte random salt and a
32-byte derived key). The parameters travel with each hash, so they can be raised later without
breaking old hashes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

SCHEME = "scrypt"
N, R, P = 2**14, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32
MIN_LENGTH = 8
# Upper bounds accepted when verifying, so a tampered hash can't make verification eat the machine.
_MAX_N, _MAX_R, _MAX_P = 2**16, 16, 4


def _derive(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=128 * r * (n + p + 2) + 1024 * 1024
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """The storable hash of ``password``; ValueError for an empty or too short (under 8 characters) one."""
    if not isinstance(password, str) or not password:
        raise ValueError("The password must not be empty.")
    if len(password) < MIN_LENGTH:
        raise ValueError(f"The password is too short: use at least {MIN_LENGTH} characters.")
    salt = os.urandom(SALT_BYTES)
    key = _derive(password, salt, N, R, P, KEY_BYTES)
    return f"{SCHEME}${N}${R}${P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (compared in constant time); False for malformed hashes."""
    if not isinstance(password, str) or not isinstance(stored, str):
        return False
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return False
    if not (1 < n <= _MAX_N and n & (n - 1) == 0 and 0 < r <= _MAX_R and 0 < p <= _MAX_P) or not salt or not expected:
        return False
    try:
        actual = _derive(password, salt, n, r, p, len(expected))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)
