"""Loading and validating the TOML configuration."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from service.config import ScheduleConfig, SecretRef, load_settings
from service.errors import ConfigError
from service.model import parse_duration, secret_name_problem

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "config" / "rotator.example.toml"

MINIMAL = """
[vault]
address = "http://127.0.0.1:8200"

[targets.eu]
service_key = {file = "/keys/eu.json"}

[[secrets]]
name = "acme-registry"
targets = ["eu"]
registries = ["registry.acme.example"]
source = {kind = "kv2", mount = "secret", path = "registries/acme"}
schedule = {every = "6h"}
"""


def write(tmp_path: Path, text: str, name: str = "rotator.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    return str(caught.value).splitlines()


def test_example_config_loads() -> None:
    """The annotated example in config/ is itself a valid configuration."""
    settings = load_settings(EXAMPLE, environ={})
    assert [s.name for s in settings.secrets] == ["acme-registry", "ghcr-pull"]
    assert set(settings.targets) == {"prod-eu", "prod-us"}
    assert settings.secrets[1].source.kind == "dynamic"
    assert settings.schedule_of(settings.secrets[1]).every == timedelta(hours=6)
    assert settings.rotation.retry.base_delay == timedelta(milliseconds=500)


def test_example_documents_every_key() -> None:
    """Every key of the settings model appears in the example file, commented or set."""
    text = EXAMPLE.read_text()
    from service.config import Settings

    def keys(model: type, prefix: str = "") -> list[str]:
        found = []
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            found.append(name)
            annotation = field.annotation
            inner = getattr(annotation, "model_fields", None)
            if inner is not None and name not in ("targets", "secrets"):
                found += keys(annotation, prefix + name + ".")
        return found

    missing = [key for key in keys(Settings) if key not in text]
    assert missing == []


def test_minimal_config_loads(tmp_path: Path) -> None:
    """A small valid file gives typed settings with defaults filled in."""
    settings = load_settings(write(tmp_path, MINIMAL), environ={})
    secret = settings.secrets[0]
    assert secret.source.ident == ("kv2", "secret", "registries/acme", None)
    assert settings.rotation.per_target_concurrency == 4
    assert settings.targets["eu"].service_key == SecretRef(file=Path("/keys/eu.json"))


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ROTATOR_SECTION__KEY wins over the file, nested keys included."""
    monkeypatch.setenv("ROTATOR_VAULT__ADDRESS", "https://vault.internal:8200")
    monkeypatch.setenv("ROTATOR_ROTATION__MAX_CONCURRENCY", "7")
    monkeypatch.setenv("ROTATOR_VAULT__AUTH__METHOD", "kubernetes")
    monkeypatch.setenv("ROTATOR_VAULT__AUTH__ROLE", "rotator")
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.vault.address == "https://vault.internal:8200"
    assert settings.rotation.max_concurrency == 7
    assert settings.vault.auth.method == "kubernetes"
    assert settings.vault.auth.jwt_ref == SecretRef(file=Path("/var/run/secrets/kubernetes.io/serviceaccount/token"))


def test_environment_error_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad value that came from the environment says which variable set it."""
    monkeypatch.setenv("ROTATOR_ROTATION__MAX_CONCURRENCY", "lots")
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, MINIMAL))
    assert "rotation.max_concurrency" in str(caught.value)
    assert "ROTATOR_ROTATION__MAX_CONCURRENCY" in str(caught.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    """Unknown key, bad cron, bad name, undefined target, duplicate and inline password: all in one error."""
    text = """
[vault]
adress = "http://127.0.0.1:8200"

[vault.auth]
method = "approle"
role_id = "r"
secret_id = "s3cr3t-inline"

[targets.eu]
service_key = {file = "/keys/eu.json"}

[[secrets]]
name = "Bad_Name!"
targets = ["eu"]
source = {path = "a"}
schedule = {cron = "61 * * * *"}

[[secrets]]
name = "good-name"
targets = ["eu", "us"]
source = {path = "b"}
schedule = {every = "1h"}

[[secrets]]
name = "good-name"
targets = ["eu"]
source = {path = "c"}
schedule = {every = "1h"}
"""
    path = write(tmp_path, text)
    lines = problems(path)
    joined = "\n".join(lines)
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert "vault.adress: unknown key" in joined
    assert "vault.auth.secret_id: inline secret values are not allowed" in joined
    assert "s3cr3t-inline" not in joined
    assert "secrets[0] (Bad_Name!).name: 'Bad_Name!' breaks AI Core's name rule" in joined
    assert "secrets[0] (Bad_Name!).schedule: bad cron expression '61 * * * *'" in joined
    assert "secrets[1] (good-name).targets: names undefined target 'us'" in joined
    assert "secrets[2] (good-name): secret 'good-name' on target 'eu' is already defined by secrets[1]" in joined
    assert len(lines) == 6


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("acme-registry", True),
        ("a.b-c_d9", True),
        ("abc", False),  # under 4 characters
        ("x" * 63, True),
        ("x" * 64, False),
        ("-acme", False),
        ("acme-", False),
        ("Acme", False),
        ("acme__registry", False),
        ("acme registry", False),
    ],
)
def test_secret_name_rule(name: str, ok: bool) -> None:
    """Names follow AI Core's pattern and the 4 to 63 character length."""
    assert (secret_name_problem(name) is None) is ok


def test_wrong_types_are_named(tmp_path: Path) -> None:
    """A string where a number belongs, and a table where a list belongs, name their keys."""
    text = MINIMAL + '\n[rotation]\nmax_concurrency = "many"\n'
    text = text.replace('targets = ["eu"]', 'targets = "eu"')
    joined = "\n".join(problems(write(tmp_path, text)))
    assert "rotation.max_concurrency: Input should be a valid integer" in joined
    assert "secrets[0] (acme-registry).targets: Input should be a valid list" in joined


def test_inline_database_password_is_refused(tmp_path: Path) -> None:
    """A password inside the database URL is an error that does not repeat the password."""
    text = MINIMAL + '\n[database]\nurl = "postgresql://app:hunter2@db/rotator"\n'
    joined = "\n".join(problems(write(tmp_path, text)))
    assert "database.url: inline password in the database URL" in joined
    assert "hunter2" not in joined


def test_malformed_toml_is_one_line(tmp_path: Path) -> None:
    """A TOML syntax error gives one line with the file and the parser's position."""
    lines = problems(write(tmp_path, "[vault\naddress = 1\n"))
    assert len(lines) == 1
    assert "not valid TOML" in lines[0]
    assert "line 1" in lines[0]


def test_missing_file_is_named(tmp_path: Path) -> None:
    """A config path that does not exist is a clear error."""
    lines = problems(tmp_path / "nope.toml")
    assert lines == [f"{tmp_path / 'nope.toml'}: file not found"]


def test_secret_without_schedule_needs_defaults(tmp_path: Path) -> None:
    """A secret with no schedule of its own needs [defaults.schedule]."""
    text = MINIMAL.replace('schedule = {every = "6h"}\n', "")
    assert problems(write(tmp_path, text))[-1].endswith(
        "secrets[0] (acme-registry).schedule: no schedule: set it here or in [defaults.schedule]"
    )
    ok = load_settings(write(tmp_path, text + '\n[defaults.schedule]\nevery = "1h"\n', "b.toml"), environ={})
    assert ok.schedule_of(ok.secrets[0]).every == timedelta(hours=1)


def test_version_pin_only_for_kv2(tmp_path: Path) -> None:
    """Pinning a version makes sense for KV v2 only."""
    text = MINIMAL.replace('kind = "kv2"', 'kind = "kv1", version = 3')
    assert any("version can only be pinned for kind kv2" in line for line in problems(write(tmp_path, text)))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("2d", 172800), (" 1h 5s ", 3605)],
)
def test_durations(text: str, seconds: float) -> None:
    """Durations read as people write them."""
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_bad_duration_says_how(tmp_path: Path) -> None:
    """A duration that does not parse shows the accepted forms."""
    text = MINIMAL.replace('every = "6h"', 'every = "6 hours"')
    assert any("not a duration: '6 hours' (use e.g." in line for line in problems(write(tmp_path, text)))


def test_schedule_needs_exactly_one_kind() -> None:
    """A schedule is either an interval or a cron expression, not both and not neither."""
    with pytest.raises(ValueError, match="exactly one of every"):
        ScheduleConfig(every=timedelta(hours=1), cron="0 * * * *")
    with pytest.raises(ValueError, match="exactly one of every"):
        ScheduleConfig()
