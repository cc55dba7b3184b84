"""The `email` notifier: each notification as an e-mail (plain text and HTML, from the Jinja2
templates `alert_subject.txt`, `alert.txt` and `alert.html`) over the `smtp:` settings.

The config loader imports this module for its settings model, at every command's start; the
templates, the mailer and the alert texts (some 40 ms of imports) are imported when a notice is
first written instead."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from typing import Any, ClassVar

from pydantic import model_validator

from monitor.config import Mailbox, NotifySettings
from monitor.publish.deliveries import DeliveryError
from monitor.publish.notifiers.base import Notice, Notifier
from monitor.publish.words import duration_text


class EmailNotifySettings(NotifySettings):
    """`{kind: email, to: [...]}`: sent over the `smtp:` section, which it needs."""

    needs_smtp: ClassVar[bool] = True
    to: list[Mailbox] = []

    def names_customers(self) -> bool:
        return True  # to the support team, who call the customer back

    @model_validator(mode="after")
    def _destination(self) -> EmailNotifySettings:
        if not self.to:
            raise ValueError("an email notifier needs `to`")
        return self


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
    "per_inquiry_limit": "One by one to",  # a flood's: more is one alert for the source
    "inquiries": "First of them",
}


def _label(notice: Notice) -> str:
    if notice["status"] == "resolved":
        return "RESOLVED"
    severity = str(notice["severity"]).upper()
    return f"{severity}, still firing" if notice.get("repeat") else severity


class EmailNotifier(Notifier):
    """An e-mail (plain text and HTML) over the `smtp:` settings the digest uses."""

    kind = "email"
    settings = EmailNotifySettings
    notify: EmailNotifySettings

    def message(self, notice: Notice, message_id: str | None = None) -> EmailMessage:
        smtp = self.config.file.smtp
        if smtp is None:  # config validation requires it; a stored delivery may outlive it
            raise DeliveryError("email notifier: no `smtp:` section", permanent=True)
        from monitor.publish.mailer import compose
        from monitor.publish.templating import render

        context = self._context(notice)
        return compose(
            sender=smtp.sender,
            to=self.notify.to,
            subject=render("alert_subject.txt", **context),
            text=render("alert.txt", **context),
            html=render("alert.html", **context),
            message_id=message_id,
        )

    def send(self, notice: Notice, *, message_id: str | None = None) -> None:
        smtp = self.config.file.smtp
        message = self.message(notice, message_id)
        assert smtp is not None
        from monitor.publish.mailer import send

        send(smtp, self.config.base_dir, message)

    def describe(self) -> str:
        return f"email to {', '.join(self.notify.to)}"

    def readable(self, notice: Notice) -> list[str]:
        """The subject and the plain-text part."""
        message = self.message(notice)
        text = message.get_body(("plain",))
        content = text.get_content() if text is not None else ""
        return [f"Subject: {message['Subject']}", *str(content).rstrip("\n").splitlines()]

    def _context(self, notice: Notice) -> dict[str, Any]:
        status = "resolved" if notice["status"] == "resolved" else str(notice["severity"])
        # A notice claimed before notices were grouped has no `count`: it is a group of one.
        count = int(notice.get("count", 1))
        from monitor.publish.alerts.groups import LISTED

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
        if notice["unit"] == "inquiries":
            return f"{amount:,.0f} inquiries"
        return duration_text(amount)

    def _local(self, stamp: str | None) -> str:
        if not stamp:
            return "-"
        at = datetime.fromisoformat(stamp)
        return at.astimezone(self.config.timezone).strftime("%Y-%m-%d %H:%M:%S %Z")

    def _detail(self, name: str, item: Any) -> str:
        if name.endswith("_at") and isinstance(item, str):
            return self._local(item)
        if name.endswith("_seconds") and isinstance(item, int | float):
            return duration_text(item)
        if isinstance(item, list):  # a flood's first few inquiries: by subject
            return ", ".join(str(i.get("subject")) if isinstance(i, dict) else str(i) for i in item)
        return str(item)
