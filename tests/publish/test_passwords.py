"""The status page's password hashes: scrypt from the standard library, in Werkzeug's format,
with bounded costs; `support-monitor password-hash` makes one; `status.users` takes them inline,
from `${ENV}` or from a file."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from monitor.cli import main
from monitor.config_file import ConfigError, load_settings
from monitor.publish.passwords import HashError, make_hash, parse_hash
from monitor.publish.status_access import load_users

# RFC 7914's scrypt test vector: "password", salt "NaCl", N=1024, r=8, p=16, 64 bytes.
RFC_7914 = (
    "scrypt:1024:8:16$NaCl$fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622e"
    "af30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"
)


def test_a_hash_checks_its_password_and_no_other() -> None:
    made = parse_hash(make_hash("s3cret", n=2**10))
    assert made.matches("s3cret")
    assert not made.matches("s3cret ") and not made.matches("")
    assert parse_hash(make_hash("s3cret", n=2**10)).salt != made.salt  # a salt each time


def test_the_format_is_werkzeugs_and_the_derivation_rfc_7914s() -> None:
    assert parse_hash(RFC_7914).matches("password")
    assert not parse_hash(RFC_7914).matches("Password")
    default = make_hash("x")
    assert default.startswith("scrypt:32768:8:1$")
    # Werkzeug's short form, `scrypt$salt$hex`, means its defaults
    short = "scrypt$" + default.split("$", 1)[1]
    assert parse_hash(short).matches("x")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("md5$abc$def", "expected an scrypt hash"),
        ("pbkdf2:sha256:600000$salt$" + "0" * 64, "expected an scrypt hash"),
        ("scrypt:2097152:8:1$salt$" + "0" * 128, "power of two from 2 to 2\\^20"),
        ("scrypt:1000:8:1$salt$" + "0" * 128, "power of two"),
        ("scrypt:1024:64:1$salt$" + "0" * 128, "r must be"),
        ("scrypt:1024:8:1$salt$" + "0" * 64, "64 bytes"),
    ],
)
def test_a_hash_out_of_bounds_is_refused_before_any_work(text: str, problem: str) -> None:
    with pytest.raises(HashError, match=problem):
        parse_hash(text)


def test_the_command_prints_a_hash_of_the_password_on_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("open sesame\n"))
    assert main(["password-hash"]) == 0
    printed = capsys.readouterr().out.strip()
    assert parse_hash(printed).matches("open sesame")
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["password-hash"]) == 2


def write(tmp_path: Path, users: list[dict[str, str]]) -> Path:
    path = tmp_path / "support-monitor.yaml"
    raw = {"metrics": {"listen": "0.0.0.0:9742"}, "status": {"users": users}}
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_users_take_their_hashes_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEAD_HASH", make_hash("one", n=2**10))
    (tmp_path / "night.hash").write_text(make_hash("two", n=2**10) + "\n")
    settings = load_settings(
        write(
            tmp_path,
            [
                {"name": "lead", "password_hash": "${LEAD_HASH}"},
                {"name": "night", "password_hash_file": "night.hash"},
            ],
        )
    )
    users = load_users(settings)
    assert users["lead"].matches("one") and users["night"].matches("two")


@pytest.mark.parametrize(
    ("users", "problem"),
    [
        ([{"name": "lead"}], "exactly one of password_hash and password_hash_file"),
        (
            [{"name": "lead", "password_hash": "x", "password_hash_file": "y"}],
            "exactly one of",
        ),
        ([{"name": "a b", "password_hash": "x"}], r"status.users\[0\].name"),
        (
            [{"name": "lead", "password_hash": "x"}, {"name": "lead", "password_hash": "y"}],
            "each user name once",
        ),
    ],
)
def test_a_user_without_one_hash_or_named_twice_is_a_config_error(
    tmp_path: Path, users: list[dict[str, str]], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_settings(write(tmp_path, users))


def test_check_says_whether_the_page_asks_and_fails_on_a_bad_hash(tmp_path: Path) -> None:
    from monitor.checks import Report, check_status_page

    def said(users: list[dict[str, str]], listen: str = "0.0.0.0:9742") -> list[str]:
        path = write(tmp_path, users)
        text = path.read_text().replace("0.0.0.0:9742", listen)
        path.write_text(text)
        lines: list[str] = []
        check_status_page(load_settings(path), Report(lines.append))
        return lines

    good = make_hash("x", n=2**10)
    assert said([{"name": "lead", "password_hash": good}]) == [
        "ok    status: the page at / asks for a login (1 users: lead)"
    ]
    assert said([])[0].startswith("warn  status: the page at / is off: 0.0.0.0:9742 is not")
    assert said([], "127.0.0.1:9742") == []  # open to the machine, as /metrics: nothing to say
    (bad,) = said([{"name": "lead", "password_hash": "md5$x$y"}])
    assert bad.startswith("FAIL  status: status.users[0].password_hash: expected an scrypt")
    assert "md5$x$y" not in bad
