"""A deadline for a whole network exchange, not for each read.

A socket timeout bounds each `recv`: a peer that sends one byte every few seconds resets it at
every byte and can hold an IMAP command, an SMTP delivery or a webhook POST for ever. The
libraries we use (imaplib, smtplib, http.client) read through buffered files and TLS, where a
deadline cannot be passed down; what they all keep is the connection's socket. So a small
watchdog thread shuts that socket down when the exchange's deadline passes: whatever read or
write is waiting returns at once (end of file, a reset), the library raises, and `expired`
tells the caller it was the deadline, not the peer, that ended it.

Stdlib only and below every layer (like monitor.config), so connectors may use it too.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType


class Deadline:
    """Arm with `start()` at the beginning of each exchange, `stop()` at its end; `close()`
    (or leaving the `with` block) ends the watchdog. `socket_of` is asked for the socket only
    when the deadline passes: a connection may replace its socket (STARTTLS) meanwhile."""

    def __init__(self, seconds: float, socket_of: Callable[[], socket.socket | None]) -> None:
        self.seconds = seconds
        self.socket_of = socket_of
        self.expired = False
        self._at: float | None = None
        self._closed = False
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._watch, name="deadline", daemon=True)
        self._thread.start()

    def __enter__(self) -> Deadline:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """A new exchange begins: it must end within `seconds` from now."""
        with self._wake:
            self._at = time.monotonic() + self.seconds
            self._wake.notify()

    def stop(self) -> None:
        """The exchange ended in time (the connection may wait idle now)."""
        with self._wake:
            self._at = None

    def close(self) -> None:
        """No more exchanges; once this returns, the socket is never shut down by us."""
        with self._wake:
            self._closed = True
            self._at = None
            self._wake.notify()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _watch(self) -> None:
        with self._wake:
            while not self._closed:
                if self._at is None:
                    self._wake.wait()
                    continue
                left = self._at - time.monotonic()
                if left > 0:
                    self._wake.wait(left)
                    continue
                self._at = None
                self.expired = True
                sock = self.socket_of()
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass  # already closed or not connected: nothing left to wait for


def timed_out(seconds: float) -> str:
    """The one line for an exchange ended by its deadline."""
    return f"timed out: no complete answer within {seconds:g} s"
