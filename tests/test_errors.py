"""One error hierarchy: a caller catches one name for each way it handles an error."""

from __future__ import annotations

import pytest

from connectors.base import ConnectorError
from connectors.chat.jsonl import LineError
from connectors.chat.slack_workspace import MemberError
from connectors.csv_rows import RowError
from connectors.json_records import RecordError
from connectors.json_stream import DocumentError
from connectors.mail.message import MailError
from monitor.cli import UsageError
from monitor.config_file import ConfigError
from monitor.errors import BadRecord, OperationError, SupportMonitorError
from monitor.publish.deliveries import DeliveryError
from monitor.publish.server import ListenError
from monitor.starter import StarterError
from monitor.store.database import StoreError


@pytest.mark.parametrize("kind", [ConnectorError, DeliveryError, StoreError])
def test_reading_sending_and_storing_fail_as_one_operation_error_that_says_if_it_is_permanent(
    kind: type[OperationError],
) -> None:
    assert issubclass(kind, OperationError)
    assert kind("down").permanent is False
    assert kind("refused", permanent=True).permanent is True
    assert str(kind("one readable line")) == "one readable line"


@pytest.mark.parametrize(
    "kind", [RowError, RecordError, LineError, DocumentError, MailError, MemberError]
)
def test_every_readers_bad_record_is_a_bad_record_and_a_value_error(kind: type[Exception]) -> None:
    assert issubclass(kind, BadRecord)
    assert issubclass(kind, ValueError)


@pytest.mark.parametrize(
    "kind", [OperationError, BadRecord, ConfigError, UsageError, ListenError, StarterError]
)
def test_every_error_of_the_monitor_has_one_root(kind: type[Exception]) -> None:
    assert issubclass(kind, SupportMonitorError)
