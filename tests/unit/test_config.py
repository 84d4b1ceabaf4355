"""Configuration: YAML file, environment overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from radpipe.config import ConfigError, Settings, load_settings


def test_defaults_derive_paths_from_data_dir(settings: Settings, tmp_path: Path) -> None:
    assert settings.store.backend == "local"
    assert settings.store.root == tmp_path / "data" / "artifacts"
    assert settings.warehouse.url == f"sqlite:///{tmp_path / 'data' / 'warehouse.db'}"


def test_yaml_file_then_environment(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "radpipe.yaml"
    path.write_text(
        """
data_dir: /srv/radpipe
store:
  backend: s3
  s3: {endpoint: "minio:9000", bucket: jobs, secret_key: from-file}
pacs:
  hospital: {ae_title: PACS1, host: pacs.example, port: 11112}
default_pacs: hospital
"""
    )
    loaded = load_settings(path)
    assert loaded.store.backend == "s3"
    assert loaded.store.s3.endpoint == "minio:9000"
    assert loaded.pacs["hospital"].port == 11112
    assert loaded.store.root == Path("/srv/radpipe/artifacts")

    monkeypatch.setenv("RADPIPE_STORE__S3__SECRET_KEY", "from-env")
    monkeypatch.setenv("RADPIPE_RUNNER__WORKERS", "2")
    overridden = load_settings(path)
    assert overridden.store.s3.secret_key.get_secret_value() == "from-env"
    assert overridden.runner.workers == 2
    assert overridden.store.s3.bucket == "jobs"  # untouched keys still come from the file


def test_radpipe_config_env_names_the_file(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "elsewhere.yaml"
    path.write_text("log_level: DEBUG\n")
    monkeypatch.setenv("RADPIPE_CONFIG", str(path))
    assert load_settings().log_level == "DEBUG"


def test_invalid_values_name_key_and_file(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("store: {backend: ftp}\nbranding: {primary_color: blue}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    message = str(err.value)
    assert str(path) in message
    assert "store.backend" in message
    assert "branding.primary_color" in message


def test_unknown_keys_and_bad_yaml_are_refused(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("stroe: {}\n")
    with pytest.raises(ConfigError, match="stroe"):
        load_settings(path)
    path.write_text("store: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(path)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "missing.yaml")


def test_default_pacs_must_exist(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "pacs.yaml"
    path.write_text("default_pacs: nowhere\n")
    with pytest.raises(ConfigError, match="default_pacs 'nowhere'"):
        load_settings(path)
