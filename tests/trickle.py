"""A real TCP peer that answers one byte at a time, for ever: the slow-loris of the servers
we talk to (an IMAP server, an SMTP server, a webhook receiver).

It accepts any number of connections; each gets `greeting` at once (if any), then, once the
client has sent its first line (`after_first_line`) or straight away, an endless answer
trickled one byte every `interval` seconds. A socket timeout never fires against it: every
read gets a byte in time. Stopping it closes every connection, so a client still reading
(the code under test without a deadline) gets end-of-file and its thread ends.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType


class Trickler:
    def __init__(
        self,
        *,
        greeting: bytes = b"",
        answer_start: bytes = b"",
        after_first_line: bool = True,
        interval: float = 0.05,
    ) -> None:
        self.greeting = greeting
        self.answer_start = answer_start
        self.after_first_line = after_first_line
        self.interval = interval
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.stopped = threading.Event()
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Trickler:
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stopped.set()
        try:
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept() in progress
        except OSError:
            pass
        self.server.close()
        for connection in list(self.connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()
        self.thread.join(5)

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.connections.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            if self.greeting:
                connection.sendall(self.greeting)
            if self.after_first_line:
                received = b""
                while b"\n" not in received:
                    chunk = connection.recv(4096)
                    if not chunk:
                        return
                    received += chunk
            connection.sendall(self.answer_start)
            # The pause is the point: this peer is slow on purpose, and the waits end at once
            # when the test stops it.
            while not self.stopped.wait(self.interval):
                connection.sendall(b"x")
        except OSError:
            return
