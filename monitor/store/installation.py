"""This installation's own secret, and the names it makes from it that outsiders cannot read.

A webhook must not carry a customer's address or number, yet its receiver needs to tell one
alert from another and see the same alert again when it resolves. A plain hash will not do: a
phone number has few enough digits that anyone holding the hash finds the number by hashing
them all. So names are keyed hashes (HMAC-SHA-256) under a random key made once per
installation and kept in the `meta` table: every instance sharing the database (PostgreSQL)
and every restart makes the same name for the same thing, and without the key (in the
database, never sent anywhere) a name says nothing.

The same key makes each outgoing message's Message-ID unique to this installation while being
the same on every instance and attempt (monitor.publish.mailer).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import Connection

from monitor.store.database import get_meta, insert_ignore
from monitor.store.schema import META

KEY = "installation_key"
OPAQUE_LENGTH = 16  # hex digits: 64 bits, no collision among any installation's subjects


def installation_key(conn: Connection) -> bytes:
    """The installation's key, made on first use. Instances starting together agree: the first
    insert wins and everyone reads the stored one."""
    conn.execute(insert_ignore(conn, META, ["key"]), [{"key": KEY, "value": secrets.token_hex(32)}])
    stored = get_meta(conn, KEY)
    assert stored is not None  # inserted just above, or by someone before
    return bytes.fromhex(stored)


def opaque(key: bytes, text: str, length: int = OPAQUE_LENGTH) -> str:
    """A stable name for `text` that cannot be turned back into it without `key`."""
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:length]
