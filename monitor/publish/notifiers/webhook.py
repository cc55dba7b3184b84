"""The `webhook` notifier: each notification as a JSON POST. Its `text` field makes it a Slack,
Mattermost or Rocket.Chat incoming webhook as it is."""

from __future__ import annotations

from monitor.publish.notifiers.base import HttpNotifier, HttpNotifySettings, Notice


class WebhookNotifySettings(HttpNotifySettings):
    """`{kind: webhook, url: ..., timeout: 10s, include_customer: false}`."""


class WebhookNotifier(HttpNotifier):
    """The notice as it is, as JSON."""

    kind = "webhook"
    settings = WebhookNotifySettings

    def send(self, notice: Notice, *, message_id: str | None = None) -> None:
        self.post_json(notice)
