"""Settings: defaults, names read from the environment, one-line validation errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from system.config import Settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(Settings.model_fields):
        monkeypatch.delenv(name.upper(), raising=False)
    settings = Settings(_env_file=None)
    assert settings.database_url.get_secret_value().startswith("sqlite+aiosqlite:///var/")
    assert settings.auto_migrate is True
    assert settings.admin_tokens == []
    assert settings.environment == "production"
    assert settings.git_commit_sha == "unknown"
    assert settings.bgg_base_url == "https://boardgamegeek.com/xmlapi2"
    assert settings.bgg_retry_attempts == 3
    assert settings.bgg_deadline_seconds == 15
    assert settings.bgg_breaker_fail_max == 5
    assert settings.bgg_breaker_reset_timeout == 60
    assert settings.thumbnail_max_bytes == 5 * 1024 * 1024
    assert "cf.geekdo-images.com" in settings.image_allowed_hosts
    assert settings.redis_url is None


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_TOKENS", " a , b,,")
    monkeypatch.setenv("IMAGE_ALLOWED_HOSTS", "127.0.0.1,cdn.example")
    monkeypatch.setenv("BGG_BREAKER_FAIL_MAX", "7")
    monkeypatch.setenv("BGG_BASE_URL", "http://127.0.0.1:8080/xmlapi2/")
    settings = Settings(_env_file=None)
    assert [t.get_secret_value() for t in settings.admin_tokens] == ["a", "b"]
    assert settings.image_allowed_hosts == ["127.0.0.1", "cdn.example"]
    assert settings.bgg_breaker_fail_max == 7
    assert settings.bgg_base_url == "http://127.0.0.1:8080/xmlapi2"


def test_secrets_do_not_leak_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_TOKENS", "hunter2")
    monkeypatch.setenv("BGG_API_TOKEN", "bgg-secret")
    text = repr(Settings(_env_file=None))
    assert "hunter2" not in text and "bgg-secret" not in text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://x"),
        ("BGG_BASE_URL", "ftp://x"),
        ("BGG_BREAKER_FAIL_MAX", "0"),
        ("BGG_RETRY_ATTEMPTS", "many"),
        ("THUMBNAIL_RETRY_MIN_WAIT", "20"),
    ],
)
def test_bad_values_are_rejected(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)
