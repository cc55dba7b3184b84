"""Notifiers are kinds in a registry, each with its own settings model, as connectors are: the
config is validated by the model of each entry's kind, and what the HTTP notifiers share
(retry or not) is one hook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor.config_file import ConfigError, settings_from_mapping
from monitor.publish.notifiers import NOTIFIERS, notifier_class, notifier_for
from monitor.publish.notifiers.base import HttpNotifier
from monitor.publish.notifiers.email import EmailNotifier, EmailNotifySettings
from monitor.publish.notifiers.webhook import WebhookNotifier, WebhookNotifySettings

SMTP = {"host": "127.0.0.1", "security": "none", "sender": "m@example.com"}


def load(notify: list[Any], tmp_path: Path) -> Any:
    return settings_from_mapping({"smtp": SMTP, "alerts": {"notify": notify}}, tmp_path)


def problems(notify: list[Any], tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(notify, tmp_path)
    return raised.value.problems


def test_each_entry_is_validated_by_the_settings_model_of_its_kind(tmp_path: Path) -> None:
    settings = load(
        [
            {"kind": "email", "to": ["oncall@example.com"]},
            {"kind": "webhook", "url": "https://hooks.example.com/x", "timeout": "5s"},
        ],
        tmp_path,
    )
    email, webhook = settings.file.alerts.notify
    assert isinstance(email, EmailNotifySettings) and email.to == ["oncall@example.com"]
    assert isinstance(webhook, WebhookNotifySettings) and webhook.timeout.total_seconds() == 5
    assert isinstance(notifier_for(settings, 0, "email"), EmailNotifier)
    assert notifier_for(settings, 1, "webhook").describe() == "webhook https://hooks.example.com"


def test_every_registered_kind_is_a_notifier_with_its_own_settings() -> None:
    for kind in NOTIFIERS:
        cls = notifier_class(kind)
        assert cls.kind == kind
        assert cls.settings.model_fields["kind"]
    assert notifier_class("email").settings.needs_smtp
    assert not notifier_class("webhook").settings.needs_smtp


def test_a_key_of_another_kind_is_an_unknown_key(tmp_path: Path) -> None:
    found = problems(
        [{"kind": "email", "to": ["a@example.com"], "url": "https://x.example"}], tmp_path
    )
    assert found == ["alerts.notify[0].url: unknown key"]


def test_an_unknown_kind_and_a_missing_destination_name_their_entry(tmp_path: Path) -> None:
    found = problems([{"kind": "pager"}, {"kind": "webhook"}, {"kind": "email"}], tmp_path)
    assert found == [
        "alerts.notify[0].kind: Input should be 'email' or 'webhook'",
        "alerts.notify[1]: a webhook notifier needs an http(s) `url`",
        "alerts.notify[2]: an email notifier needs `to`",
    ]


def test_an_email_notifier_needs_the_smtp_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping(
            {"alerts": {"notify": [{"kind": "email", "to": ["a@x.example"]}]}}, tmp_path
        )
    assert raised.value.problems == ["alerts.notify[0]: an email notifier needs the `smtp` section"]


@pytest.mark.parametrize(
    ("code", "permanent"),
    [(301, True), (400, True), (404, True), (408, False), (425, False), (429, False), (500, False)],
)
def test_an_http_error_is_permanent_unless_retrying_can_help(code: int, permanent: bool) -> None:
    assert HttpNotifier.permanent_status(code) is permanent
    assert WebhookNotifier.permanent_status(code) is permanent
