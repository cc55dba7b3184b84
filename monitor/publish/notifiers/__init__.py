"""Alert notifiers: one small class per `alerts.notify[].kind`, registered here.

Each kind declares, beside its class, the settings model of its entry in `alerts.notify`
(`EmailNotifySettings`, `WebhookNotifySettings`: subclasses of `monitor.config.NotifySettings`),
as each connector kind does for its source. The config loader (monitor.config_file) asks this
registry which model a `kind` takes, so `monitor.config` knows no notifier.

A notifier sends one notification (the dict of `monitor.publish.alerts.groups.combine`: one
notice or a group of them) and raises `DeliveryError` when it cannot: `permanent` for what
retrying cannot fix (a 4xx answer, a rejected recipient), transient otherwise (the network, a
5xx), which `monitor.publish.deliveries` retries with backoff. Error messages name the receiver
without its secrets: a webhook's path and query (a Slack URL's path *is* its secret) never
appear in a message or a log.

Kinds map to `module:Class` strings and are imported on first use, like connectors.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module

from monitor.config import Settings
from monitor.publish.deliveries import DeliveryError
from monitor.publish.notifiers.base import Notifier

NOTIFIERS: dict[str, str] = {
    "email": "monitor.publish.notifiers.email:EmailNotifier",
    "webhook": "monitor.publish.notifiers.webhook:WebhookNotifier",
}


@cache
def notifier_class(kind: str) -> type[Notifier]:
    """The class for `kind`; KeyError if no such kind is registered."""
    module_name, _, class_name = NOTIFIERS[kind].partition(":")
    cls: type[Notifier] = getattr(import_module(module_name), class_name)
    assert issubclass(cls, Notifier) and cls.kind == kind, NOTIFIERS[kind]
    return cls


def notifier_for(settings: Settings, index: int, kind: str) -> Notifier:
    """The notifier `alerts.notify[index]`; a permanent error when the config no longer has it
    (the delivery was claimed under an older configuration)."""
    configured = settings.file.alerts.notify
    if index >= len(configured) or configured[index].kind != kind:
        raise DeliveryError(
            f"alerts.notify[{index}] ({kind}) is no longer configured", permanent=True
        )
    return notifier_class(kind)(configured[index], settings)
