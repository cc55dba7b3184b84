"""What every notifier shares: the `Notifier` contract, and `HttpNotifier` for the ones that
POST to a receiver (a JSON webhook today; Slack, Teams or PagerDuty tomorrow)."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import model_validator

from monitor import __version__
from monitor.config import HttpUrl, NotifySettings, Settings, Timeout
from monitor.deadlines import Deadline, timed_out
from monitor.publish.deliveries import DeliveryError

Notice = Mapping[str, Any]


class Notifier(ABC):
    """One kind of notifier: its `kind`, the settings model of its `alerts.notify` entry, and
    `send` and `describe`. A minimal one::

        class PagerNotifier(HttpNotifier):
            kind, settings = "pager", PagerNotifySettings

            def send(self, notice: Notice, *, message_id: str | None = None) -> None:
                self.post_json({"summary": notice["summary"], "severity": notice["severity"]})
    """

    kind: ClassVar[str]
    settings: ClassVar[type[NotifySettings]]

    def __init__(self, notify: NotifySettings, settings: Settings) -> None:
        assert isinstance(notify, self.settings), type(notify)
        self.notify = notify
        self.config = settings

    @abstractmethod
    def send(self, notice: Notice, *, message_id: str | None = None) -> None:
        """Deliver one notice; raise DeliveryError. `message_id`: for a notifier that sends
        mail, the Message-ID made from the delivery's key (the same at every attempt, so a
        re-send is merged by mail clients); others ignore it."""

    @abstractmethod
    def describe(self) -> str:
        """Where notices go, without secrets (for `alerts --dry-run` and logs)."""

    def readable(self, notice: Notice) -> list[str]:
        """What a person reads of `notice` as this notifier sends it (`alerts --dry-run`): by
        default its `text`, as a chat shows it."""
        return str(notice.get("text", "")).splitlines()


class HttpNotifySettings(NotifySettings):
    """Keys of every notifier that POSTs to a receiver."""

    url: HttpUrl | None = None
    # Also send customers' names, numbers and inquiry subjects. By default a receiver outside
    # the support team (a chat channel, a ticket system, anyone's endpoint) gets none, and
    # subjects as opaque ids (monitor.publish.alerts.notices).
    include_customer: bool = False
    # The whole POST (connecting, sending, the answer) ends within it, however slowly the
    # receiver answers, so a slow receiver cannot stall alerts.
    timeout: Timeout = timedelta(seconds=10)

    def names_customers(self) -> bool:
        return self.include_customer

    @model_validator(mode="after")
    def _destination(self) -> HttpNotifySettings:
        if not self.url:
            raise ValueError(f"a {self.kind} notifier needs an http(s) `url`")
        return self


class HttpNotifier(Notifier):
    """A notifier that POSTs to `url`: the whole exchange ends within `timeout`, a redirect is
    not followed (urllib would turn a POST into a GET without its body), and errors name the
    receiver by scheme, host and port only. Whether an HTTP error is worth retrying is
    `permanent_status`, which a receiver with other conventions overrides."""

    settings: ClassVar[type[HttpNotifySettings]]

    def __init__(self, notify: NotifySettings, settings: Settings) -> None:
        super().__init__(notify, settings)
        assert isinstance(notify, HttpNotifySettings) and notify.url is not None
        self.url = notify.url
        self.timeout = notify.timeout.total_seconds()
        parts = urlsplit(self.url)
        self.where = f"{self.kind} {parts.scheme}://{parts.hostname}" + (
            f":{parts.port}" if parts.port else ""
        )

    def describe(self) -> str:
        return self.where

    @classmethod
    def permanent_status(cls, code: int) -> bool:
        """4xx: the receiver refuses this request (wrong URL, revoked token): retrying will not
        help, except for "timeout", "too early" and "too many requests". 3xx: fix the URL."""
        return code < 500 and code not in (408, 425, 429)

    def post_json(self, body: Any) -> None:
        """POST `body` as JSON; DeliveryError (permanent or not) when it is not taken."""
        request = urllib.request.Request(
            self.url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"support-monitor/{__version__}",
            },
        )
        # The whole POST, from connecting to the last byte of the answer, ends within
        # `timeout` however slowly the receiver trickles its answer.
        seconds = self.timeout
        connections = _Connections()
        opener = urllib.request.build_opener(
            _NoRedirect, _HttpHandler(connections), _HttpsHandler(connections)
        )
        try:
            with Deadline(seconds, connections.socket) as deadline:
                try:
                    with opener.open(request, timeout=seconds) as response:
                        response.read()
                except (OSError, http.client.HTTPException) as exc:
                    if deadline.expired and not isinstance(exc, urllib.error.HTTPError):
                        raise TimeoutError(timed_out(seconds)) from exc
                    raise
                if deadline.expired:  # cut short, an answer can look whole: it is not one
                    raise TimeoutError(timed_out(seconds))
        except urllib.error.HTTPError as exc:
            reason = " ".join(str(exc.reason).split())[:100]
            raise DeliveryError(
                f"{self.where}: HTTP {exc.code} {reason}".rstrip(),
                permanent=self.permanent_status(exc.code),
            ) from None
        except urllib.error.URLError as exc:
            raise DeliveryError(f"{self.where}: {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, bad answers
            raise DeliveryError(f"{self.where}: {exc or type(exc).__name__}") from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would turn a redirected POST into a GET without the body and call it delivered.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _Connections:
    """The HTTP connections urllib opens for one request (one, or one through a proxy), so
    that the exchange's deadline can reach their socket (monitor.deadlines)."""

    def __init__(self) -> None:
        self.made: list[http.client.HTTPConnection] = []

    def factory(self, kind: type[http.client.HTTPConnection]) -> Any:
        def make(host: str, **options: Any) -> http.client.HTTPConnection:
            connection = kind(host, **options)
            self.made.append(connection)
            return connection

        return make

    def socket(self) -> socket.socket | None:
        return self.made[-1].sock if self.made else None


class _HttpHandler(urllib.request.HTTPHandler):
    def __init__(self, connections: _Connections) -> None:
        super().__init__()
        self.connections = connections

    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(self.connections.factory(http.client.HTTPConnection), req)


class _HttpsHandler(urllib.request.HTTPSHandler):
    def __init__(self, connections: _Connections) -> None:
        super().__init__()
        self.connections = connections

    def https_open(self, req: urllib.request.Request) -> Any:
        factory = self.connections.factory(http.client.HTTPSConnection)
        return self.do_open(factory, req, context=self._context)  # type: ignore[attr-defined]
