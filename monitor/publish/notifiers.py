"""Alert notifiers: one small class per `alerts.notify[].kind`, registered in NOTIFIERS.

A notifier sends one notification (the dict of `monitor.publish.alerts.groups.combine`: one notice
or a group of them) and raises `DeliveryError` when it cannot: `permanent` for what retrying cannot
fix (a 4xx answer, a rejected recipient), transient otherwise (the network, a 5xx), which
`monitor.publish.deliveries` retries with backoff. Error messages name the receiver without its
secrets: a webhook's path and query (a Slack URL's path *is* its secret) never appear in a message
or a log.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime
from email.message import EmailMessage
from typing import Any, ClassVar
from urllib.parse import urlsplit

from monitor import __version__
from monitor.config import NotifySettings, Settings
from monitor.deadlines import Deadline, timed_out
from monitor.publish.alerts.groups import LISTED
from monitor.publish.deliveries import DeliveryError
from monitor.publish.mailer import compose
from monitor.publish.mailer import send as send_mail
from monitor.publish.templating import render
from monitor.publish.words import duration_text

Notice = Mapping[str, Any]
COLOURS = {"critical": "#cf222e", "warning": "#9a6700", "resolved": "#1a7f37"}
DETAIL_NAMES = {
    "entered_at": "Entered queue",
    "wait_seconds": "Wait",
    "inquiry_subject": "Inquiry",
    "opened_at": "Opened",
    "due_at": "Reply due",
    "response_seconds": "Answered after",
    "last_success_at": "Last success",
    "consecutive_failures": "Failed polls",
    "window_seconds": "Window",
}


class Notifier(ABC):
    kind: ClassVar[str]

    def __init__(self, notify: NotifySettings, settings: Settings) -> None:
        self.notify = notify
        self.settings = settings

    @abstractmethod
    def send(self, notice: Notice, message_id: str | None = None) -> None:
        """Deliver one notice; raise DeliveryError. `message_id`: the e-mail's Message-ID,
        made from the delivery's key (the same at every attempt)."""

    @abstractmethod
    def describe(self) -> str:
        """Where notices go, without secrets (for `alerts --dry-run` and logs)."""


def _label(notice: Notice) -> str:
    if notice["status"] == "resolved":
        return "RESOLVED"
    severity = str(notice["severity"]).upper()
    return f"{severity}, still firing" if notice.get("repeat") else severity


class EmailNotifier(Notifier):
    """An e-mail (plain text and HTML) over the `smtp:` settings the digest uses."""

    kind = "email"

    def message(self, notice: Notice, message_id: str | None = None) -> EmailMessage:
        smtp = self.settings.file.smtp
        if smtp is None:  # config validation requires it; a stored delivery may outlive it
            raise DeliveryError("email notifier: no `smtp:` section", permanent=True)
        context = self._context(notice)
        return compose(
            sender=smtp.sender,
            to=self.notify.to,
            subject=render("alert_subject.txt", **context),
            text=render("alert.txt", **context),
            html=render("alert.html", **context),
            message_id=message_id,
        )

    def send(self, notice: Notice, message_id: str | None = None) -> None:
        smtp = self.settings.file.smtp
        message = self.message(notice, message_id)
        assert smtp is not None
        send_mail(smtp, self.settings.base_dir, message)

    def describe(self) -> str:
        return f"email to {', '.join(self.notify.to)}"

    def _context(self, notice: Notice) -> dict[str, Any]:
        status = "resolved" if notice["status"] == "resolved" else str(notice["severity"])
        # A notice claimed before notices were grouped has no `count`: it is a group of one.
        count = int(notice.get("count", 1))
        listed = list(notice.get("alerts", []))[:LISTED] if count > 1 else []
        return {
            "notice": notice,
            "count": count,
            "group": [
                {
                    "subject": alert["subject"],
                    "summary": alert["summary"],
                    "source": alert["source"] or "-",
                    "started": self._local(alert["started_at"]),
                    "resolved": self._local(alert["resolved_at"]),
                }
                for alert in listed
            ],
            "more": count - len(listed),
            "sources": ", ".join(notice["details"].get("sources", [])) if count > 1 else "",
            "label": _label(notice),
            "colour": COLOURS.get(status, "#57606a"),
            "value": self._amount(notice, notice["value"]),
            "threshold": self._amount(notice, notice["threshold"]),
            "started": self._local(notice["started_at"]),
            "resolved": self._local(notice["resolved_at"]),
            "details": [
                (
                    DETAIL_NAMES.get(name, name.replace("_", " ").capitalize()),
                    self._detail(name, item),
                )
                for name, item in notice["details"].items()
                if item is not None
            ],
        }

    def _amount(self, notice: Notice, amount: float | None) -> str | None:
        if amount is None:
            return None
        if notice["unit"] == "ratio":
            return f"{amount * 100:.0f}%"
        return duration_text(amount)

    def _local(self, stamp: str | None) -> str:
        if not stamp:
            return "-"
        at = datetime.fromisoformat(stamp)
        return at.astimezone(self.settings.timezone).strftime("%Y-%m-%d %H:%M:%S %Z")

    def _detail(self, name: str, item: Any) -> str:
        if name.endswith("_at") and isinstance(item, str):
            return self._local(item)
        if name.endswith("_seconds") and isinstance(item, int | float):
            return duration_text(item)
        return str(item)


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


class WebhookNotifier(Notifier):
    """The notice as a JSON POST; its `text` makes it a Slack/Mattermost incoming webhook."""

    kind = "webhook"

    def __init__(self, notify: NotifySettings, settings: Settings) -> None:
        super().__init__(notify, settings)
        assert notify.url is not None
        self.url = notify.url
        parts = urlsplit(self.url)
        self.where = f"webhook {parts.scheme}://{parts.hostname}" + (
            f":{parts.port}" if parts.port else ""
        )

    def send(self, notice: Notice, message_id: str | None = None) -> None:
        request = urllib.request.Request(
            self.url,
            data=json.dumps(notice).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"support-monitor/{__version__}",
            },
        )
        # The whole POST, from connecting to the last byte of the answer, ends within
        # `timeout` however slowly the receiver trickles its answer.
        seconds = self.notify.timeout.total_seconds()
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
            # 4xx: the receiver refuses this request (wrong URL, revoked token): retrying will
            # not help, except for "timeout" and "too many requests". 3xx: fix the URL.
            permanent = exc.code < 500 and exc.code not in (408, 425, 429)
            reason = " ".join(str(exc.reason).split())[:100]
            raise DeliveryError(
                f"{self.where}: HTTP {exc.code} {reason}".rstrip(), permanent=permanent
            ) from None
        except urllib.error.URLError as exc:
            raise DeliveryError(f"{self.where}: {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, bad answers
            raise DeliveryError(f"{self.where}: {exc or type(exc).__name__}") from None

    def describe(self) -> str:
        return self.where


NOTIFIERS: dict[str, type[Notifier]] = {
    EmailNotifier.kind: EmailNotifier,
    WebhookNotifier.kind: WebhookNotifier,
}


def notifier_for(settings: Settings, index: int, kind: str) -> Notifier:
    """The notifier `alerts.notify[index]`; a permanent error when the config no longer has it
    (the delivery was claimed under an older configuration)."""
    configured = settings.file.alerts.notify
    if index >= len(configured) or configured[index].kind != kind:
        raise DeliveryError(
            f"alerts.notify[{index}] ({kind}) is no longer configured", permanent=True
        )
    return NOTIFIERS[kind](configured[index], settings)
