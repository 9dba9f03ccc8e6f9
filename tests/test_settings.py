"""Configuration: precedence, the documented example, and one-line errors with exit code 2."""

import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from bot.cli import main
from bot.settings import ConfigError, Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("ENGAGE_") and name != "ENGAGE_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, info in model.model_fields.items():
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel) and prefix == "":
            keys |= _keys(sub, f"{name}.")
        else:
            keys.add(prefix + name)
    return keys


def _flatten(data: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in data.items():
        if isinstance(value, dict) and prefix == "":
            out |= _flatten(value, f"{key}.")
        else:
            out.add(prefix + key)
    return out


def test_example_documents_every_key_except_the_table_lists() -> None:
    documented = _flatten(tomllib.loads(EXAMPLE.read_text(encoding="utf-8")))
    assert _keys(Settings) - documented == {"loyalty.tiers", "loyalty.rewards"}
    assert documented - _keys(Settings) == set()


def test_example_values_are_the_defaults() -> None:
    assert load_settings(EXAMPLE) == Settings()


def test_toml_overrides_defaults_and_env_overrides_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "engage.toml"
    cfg.write_text('[delivery]\nweekly_cap = 5\nbatch_size = 50\n', encoding="utf-8")
    assert load_settings(cfg).delivery.weekly_cap == 5
    monkeypatch.setenv("ENGAGE_DELIVERY__WEEKLY_CAP", "7")
    settings = load_settings(cfg)
    assert (settings.delivery.weekly_cap, settings.delivery.batch_size) == (7, 50)


def test_config_file_is_found_from_env_then_cwd(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.toml").write_text('[web]\nport = 9001\n', encoding="utf-8")
    assert load_settings().web.port == 9001
    other = tmp_path / "other.toml"
    other.write_text('[web]\nport = 9002\n', encoding="utf-8")
    monkeypatch.setenv("ENGAGE_CONFIG", str(other))
    assert load_settings().web.port == 9002
    assert load_settings(tmp_path / "config.toml").web.port == 9001


def test_secrets_never_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGAGE_TWILIO__AUTH_TOKEN", "s3cr3t-token")
    settings = load_settings()
    assert settings.twilio.auth_token.get_secret_value() == "s3cr3t-token"
    assert "s3cr3t" not in repr(settings)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[telegram]\nmode = "push"\n', "telegram.mode: Input should be 'polling' or 'webhook'"),
        ('[telegram]\nmode = "webhook"\nwebhook_url = "https://x/telegram/webhook"\n',
         "telegram.webhook_secret: required when mode = 'webhook'"),
        ('[schedule]\ntimezone = "Mars/Olympus"\n', "schedule.timezone: unknown time zone"),
        ('[database]\nurl = "mysql://x"\n', "database.url: must start with sqlite://"),
        ('[delivery]\nweekly_cap = -1\n', "delivery.weekly_cap: Input should be greater"),
        ('[delivery]\nweekly_kap = 2\n', "delivery.weekly_kap: unknown key"),
        ('[renewal]\noffsets = [30, 30]\n', "renewal.offsets: offsets must be distinct"),
        ('[schedule\n', "config file"),
    ],
)
def test_invalid_config_is_one_line_naming_the_key_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, expected: str
) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError, match=None) as info:
        load_settings(cfg)
    assert expected in str(info.value)
    assert main(["--config", str(cfg), "db", "upgrade"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and expected in err and "Traceback" not in err


def test_missing_config_file_is_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", "nope.toml", "db", "upgrade"]) == 2
    assert "nope.toml not found" in capsys.readouterr().err


def test_unreachable_database_is_one_line_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENGAGE_DATABASE__URL", "postgres://engage:pw@127.0.0.1:1/engage")
    assert main(["db", "upgrade"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("engage: cannot reach database postgres://engage:***@127.0.0.1:1")
    assert "pw" not in err.replace("***", "")


def test_db_upgrade_creates_sqlite_file_and_is_repeatable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENGAGE_DATABASE__URL", f"sqlite://{tmp_path}/sub/e.sqlite3")
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "upgrade"]) == 0
    assert (tmp_path / "sub" / "e.sqlite3").is_file()
    assert capsys.readouterr().out.count("database is up to date") == 2
