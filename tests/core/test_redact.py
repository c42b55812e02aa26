from __future__ import annotations

import re

import pytest

from chronos_core._redact import REDACTED, RedactionRule, Redactor

GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5" * 4
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw\n"
    "-----END RSA PRIVATE KEY-----"
)

# (text, the secret that must disappear, what must still be there)
CASES = {
    "aws_access_key": ("key id AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE", "key id "),
    "authorization_bearer": (
        "Authorization: Bearer abc.def-ghi_123",
        "abc.def-ghi_123",
        "Authorization: Bearer ",
    ),
    "authorization_basic": ("authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz", "Basic "),
    "bearer_alone": ("sent bearer tok3n-value== upstream", "tok3n-value==", "upstream"),
    "password_kv": ("connect password=hunter2 host=db", "hunter2", "host=db"),
    "password_json": ('{"user": "bob", "password": "hun ter2"}', "hun ter2", '"user": "bob"'),
    "password_python_repr": ("{'db_password': 'hunter2'}", "hunter2", "'db_password': '"),
    "api_key_kv": ("GET /v1?api_key=sk123abc&page=2", "sk123abc", "&page=2"),
    "api_key_json": ('{"apiKey": "zzz999"}', "zzz999", '"apiKey": "'),
    "token_kv": ("TOKEN=t0k3n python job.py", "t0k3n", "python job.py"),
    "secret_kv": ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI/K7MDENG", "aws"),
    "client_secret_yaml": ("client_secret: s3cr3t-v4lue", "s3cr3t-v4lue", "client_secret: "),
    "github_token": (f"cloning with {GITHUB_TOKEN} now", GITHUB_TOKEN, " now"),
    "github_pat": ("github_pat_11ABCDEFG0123456789_abcdefghijk", "11ABCDEFG0123456789", ""),
    "slack_token": ("slack xoxb-1234567890-abcdefghij ok", "xoxb-1234567890-abcdefghij", " ok"),
    "private_key": (f"key:\n{PEM}\ndone", "MIIEowIBAAKCAQEAu1SU1Lf", "done"),
    "url_credentials": (
        "postgres://app:s3cret@db.internal:5432/app",
        "s3cret",
        "postgres://app:",
    ),
    "jwt": (f"session {JWT} expired", JWT, "session "),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_default_rules_remove_the_secret_and_keep_the_context(name: str) -> None:
    text, secret, kept = CASES[name]
    result = Redactor.default().redact(text)

    assert secret not in result
    assert REDACTED in result
    assert kept in result


def test_only_the_secret_part_is_replaced() -> None:
    redactor = Redactor()
    assert redactor.redact("password=hunter2 and more") == "password=[REDACTED] and more"
    assert redactor.redact("postgres://app:pw@db/x") == "postgres://app:[REDACTED]@db/x"
    assert redactor.redact('{"token": "abc"}') == '{"token": "[REDACTED]"}'


def test_unterminated_private_key_is_still_hidden() -> None:
    cut = PEM.split("-----END")[0]  # truncated output can cut the block short
    assert "MIIEow" not in Redactor().redact(cut)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Processed 1,204 rows in 3.2s; tokens=5 max_tokens=100",
        "secret_name=db-creds keyboard layout us",
        "see https://example.com/path?page=2 for details",
        "PWD=/home/app SHELL=/bin/bash",
        "a" * 10_000,
    ],
)
def test_text_without_secrets_is_unchanged(text: str) -> None:
    assert Redactor().redact(text) == text


def test_redacting_twice_changes_nothing_more() -> None:
    redactor = Redactor()
    text = "Authorization: Bearer abc password=x " + GITHUB_TOKEN
    once = redactor.redact(text)
    assert redactor.redact(once) == once


def test_extra_patterns_extend_the_defaults() -> None:
    redactor = Redactor(
        extra_patterns=[
            r"\bcust-\d{6}\b",
            RedactionRule.compile("internal", r"internal_id:(?P<secret>\w+)", ["internal_id"]),
        ]
    )
    result = redactor.redact("customer cust-123456 internal_id:abc password=pw")

    assert result == "customer [REDACTED] internal_id:[REDACTED] password=[REDACTED]"


def test_defaults_can_be_left_out() -> None:
    redactor = Redactor(extra_patterns=[re.compile("foo")], include_defaults=False)
    assert redactor.redact("foo password=pw") == "[REDACTED] password=pw"


def test_default_is_shared() -> None:
    assert Redactor.default() is Redactor.default()
