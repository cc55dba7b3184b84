"""Password hashes of the status page's users: the standard library's `hashlib.scrypt`.

A hash is one line, `scrypt:N:r:p$salt$hex`: the scrypt cost parameters, the salt (as text) and
the 64-byte derived key in hex. It is the format of Werkzeug's `generate_password_hash`, so a
hash made by Flask tooling works here too; `support-monitor password-hash` makes one.

The cost parameters are bounded (N up to 2^20, r up to 32, p up to 16) when a hash is read, so a
configured hash can never make one login take unbounded memory or time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

N, R, P = 2**15, 8, 1  # Werkzeug's defaults: about 32 MiB and a few tens of ms per check
MAX_N, MAX_R, MAX_P = 2**20, 32, 16
SALT_CHARS = string.ascii_letters + string.digits
SALT_LENGTH = 16
_FORMAT = re.compile(r"scrypt(?::(\d+):(\d+):(\d+))?\$([!-#%-~]{1,128})\$([0-9a-f]{32,256})")


class HashError(ValueError):
    """A configured hash is not one this module can check (the message says why)."""


@dataclass(frozen=True)
class PasswordHash:
    n: int
    r: int
    p: int
    salt: str
    key: bytes

    def matches(self, password: str) -> bool:
        """The password derives this key (compared in constant time)."""
        return hmac.compare_digest(_derive(password, self.salt, self.n, self.r, self.p), self.key)

    def text(self) -> str:
        return f"scrypt:{self.n}:{self.r}:{self.p}${self.salt}${self.key.hex()}"


def _derive(password: str, salt: str, n: int, r: int, p: int) -> bytes:
    # maxmem as Werkzeug sets it: scrypt needs 128 * n * r * p bytes, and a little more.
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt.encode("utf-8"), n=n, r=r, p=p,
        maxmem=132 * n * r * p, dklen=64,
    )  # fmt: skip


def make_hash(password: str, *, n: int = N, r: int = R, p: int = P) -> str:
    """A new hash of `password` with a random salt."""
    salt = "".join(secrets.choice(SALT_CHARS) for _ in range(SALT_LENGTH))
    return PasswordHash(n, r, p, salt, _derive(password, salt, n, r, p)).text()


def parse_hash(text: str) -> PasswordHash:
    """The hash written as `scrypt:N:r:p$salt$hex` (or Werkzeug's `scrypt$salt$hex`, its
    defaults); HashError when it is anything else or its costs are out of bounds."""
    found = _FORMAT.fullmatch(text.strip())
    if found is None:
        raise HashError(
            "expected an scrypt hash `scrypt:N:r:p$salt$hex` "
            "(make one with `support-monitor password-hash`)"
        )
    n_text, r_text, p_text, salt, hexed = found.groups()
    n, r, p = (int(n_text), int(r_text), int(p_text)) if n_text else (N, R, P)
    if n < 2 or n > MAX_N or n & (n - 1):
        raise HashError(f"scrypt N must be a power of two from 2 to 2^20, got {n}")
    if not 1 <= r <= MAX_R or not 1 <= p <= MAX_P:
        raise HashError(f"scrypt r must be 1-{MAX_R} and p 1-{MAX_P}, got r={r} p={p}")
    if len(hexed) != 128:
        raise HashError("the key must be 64 bytes (128 hex digits)")
    return PasswordHash(n, r, p, salt, bytes.fromhex(hexed))
