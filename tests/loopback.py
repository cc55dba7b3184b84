"""A real TCP server on a loopback port, its accepting done in a thread of its own: the base of
the scripted peers some tests talk to (an IMAP server with a script of answers, one that
announces a huge literal). A subclass says what `serve` does with the listening socket;
leaving the `with` block closes it, which ends an `accept` in progress, and waits for the thread.
"""

from __future__ import annotations

import socket
import threading
from typing import Any, Self


class LoopbackServer:
    join_seconds = 5.0

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.close()
        self.thread.join(self.join_seconds)

    def serve(self) -> None:
        raise NotImplementedError


def imap_source(port: int, timeout: str) -> dict[str, Any]:
    """A source reading a plain-text IMAP server on a loopback port (a scripted peer's)."""
    return {
        "name": "inbox",
        "kind": "imap",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "username": "support@example.com",
        "password": "secret",
        "timeout": timeout,
    }
