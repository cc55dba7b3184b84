"""Outgoing mail as real servers take it: STARTTLS and implicit TLS with AUTH against aiosmtpd,
its certificate signed by a private CA given as `ca_file`; verification is never off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.config import SmtpSettings
from monitor.publish.deliveries import DeliveryError
from monitor.publish.mailer import compose, send
from tests.servers import ComponentMissing, component_required, make_test_ca
from tests.sinks import SmtpSink

USER, PASSWORD = "monitor@example.com", "s3cret-for-smtp"
# aiosmtpd warns that AUTH is allowed without STARTTLS: on the implicit-TLS port it is in TLS.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(ca.pem, cert.pem, key.pem): a throwaway CA and a server certificate for 127.0.0.1."""
    try:
        return make_test_ca(tmp_path_factory.mktemp("ca"))
    except ComponentMissing as exc:
        if component_required():
            pytest.fail(f"{exc} (CI=true: real components are required)", pytrace=False)
        pytest.skip(f"{exc}: apt-get install openssl")


@pytest.fixture(params=["starttls", "tls"])
def server(
    request: pytest.FixtureRequest, certificates: tuple[Path, Path, Path]
) -> Iterator[SmtpSink]:
    _, cert, key = certificates
    sink = SmtpSink(security=request.param, certificate=(cert, key), credentials=(USER, PASSWORD))
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


def smtp(server: SmtpSink, **extra: Any) -> SmtpSettings:
    settings = {
        "host": server.host,
        "port": server.port,
        "security": server.security,
        "username": USER,
        "password": PASSWORD,
        "sender": "Support Monitor <monitor@example.com>",
    }
    return SmtpSettings.model_validate(settings | extra)


def digest() -> Any:
    return compose(
        sender="Support Monitor <monitor@example.com>",
        to=["lead@example.com"],
        subject="Support digest",
        text="All quiet.",
        html="<p>All quiet.</p>",
    )


def test_a_digest_goes_out_over_tls_after_logging_in(
    server: SmtpSink, certificates: tuple[Path, Path, Path]
) -> None:
    ca, _, _ = certificates
    send(smtp(server, ca_file=ca), Path("/"), digest())
    (received,) = server.messages
    assert received.recipients == ["lead@example.com"]
    assert received.message["Subject"] == "Support digest"
    assert server.logins == [USER]  # AUTH was given, inside TLS (the sink refuses it outside)


def test_a_wrong_password_is_a_permanent_error(
    server: SmtpSink, certificates: tuple[Path, Path, Path]
) -> None:
    ca, _, _ = certificates
    with pytest.raises(DeliveryError) as failed:
        send(smtp(server, ca_file=ca, password="wrong"), Path("/"), digest())
    assert failed.value.permanent
    assert f"smtp {server.host}:{server.port}: authentication failed" in str(failed.value)
    assert server.messages == [] and server.logins == []


def test_a_certificate_the_system_does_not_trust_is_refused(server: SmtpSink) -> None:
    """Without the private CA, the server's certificate is not trusted: nothing is sent, and
    the password never leaves the machine."""
    with pytest.raises(DeliveryError, match="certificate not trusted") as failed:
        send(smtp(server), Path("/"), digest())
    assert not failed.value.permanent  # fixed by configuring `ca_file`, then retried
    assert server.messages == [] and server.logins == []
