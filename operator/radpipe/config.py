"""radpipe configuration: one YAML file plus environment overrides.

Precedence, highest first: environment variables (``RADPIPE_`` prefix, ``__`` between
nested keys, e.g. ``RADPIPE_STORE__BACKEND=s3``), the YAML file, built-in defaults.
The YAML file is the one given by ``--config`` or ``RADPIPE_CONFIG``, else ``./radpipe.yaml``
when it exists. ``radpipe config schema`` prints the full JSON schema; ``radpipe config
show`` prints the effective configuration with secrets masked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_CONFIG_FILE = Path("radpipe.yaml")


class ConfigError(Exception):
    """The configuration file or an override is invalid; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class S3Config(_Section):
    """S3/MinIO connection for the ``s3`` store backend."""

    endpoint: str = Field("127.0.0.1:9000", description="host:port of the S3 API")
    bucket: str = Field("radpipe", description="bucket holding all job artifacts")
    access_key: str = Field("", description="access key id")
    secret_key: SecretStr = Field(SecretStr(""), description="secret key (prefer the env var)")
    secure: bool = Field(False, description="use HTTPS")
    region: str | None = None
    prefix: str = Field("", description="key prefix inside the bucket")
    attempts: int = Field(5, ge=1, description="tries per call before giving up")
    backoff_seconds: float = Field(0.5, gt=0, description="first retry delay, doubled each try")
    timeout_seconds: float = Field(30.0, gt=0, description="read timeout per request")


class StoreConfig(_Section):
    """Where artifacts live: ``local`` (a directory) or ``s3`` (MinIO/S3)."""

    backend: Literal["local", "s3"] = "local"
    root: Path | None = Field(
        None, description="local backend directory; default DATA_DIR/artifacts"
    )
    s3: S3Config = Field(default_factory=S3Config)


class TlsConfig(_Section):
    """TLS for a DICOM connection (DICOM PS3.15 B.1 secure transport) or DICOMweb.

    As a client: ``ca_file`` verifies the server; ``cert_file``/``key_file`` present a
    client certificate. As a server (intake): ``cert_file``/``key_file`` are required, and
    with ``ca_file`` (and ``verify``) every client must present a certificate it signed.
    """

    ca_file: Path | None = Field(
        None, description="PEM CA bundle the peer's certificate must chain to (default: system)"
    )
    cert_file: Path | None = Field(None, description="PEM certificate we present")
    key_file: Path | None = Field(None, description="PEM private key of cert_file")
    verify: bool = Field(
        True, description="verify the peer's certificate (and a server's host name)"
    )


class PacsNodeConfig(_Section):
    """One PACS node, reached over DIMSE or DICOMweb."""

    transport: Literal["dimse", "dicomweb"] = "dimse"
    ae_title: str = Field("ANY-SCP", max_length=16, description="the PACS's AE title")
    host: str = "127.0.0.1"
    port: int = Field(104, ge=1, le=65535)
    calling_ae: str = Field("RADPIPE", max_length=16, description="our AE title toward it")
    retrieve: Literal["c-move", "c-get", "wado"] = "c-get"
    move_destination: str = Field("RADPIPE", max_length=16, description="C-MOVE destination AE")
    storage_port: int = Field(11113, ge=0, le=65535, description="our Storage SCP port (C-MOVE)")
    dicomweb_url: str | None = Field(None, description="base URL, e.g. http://pacs/dicom-web")
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = Field(None, description="bearer token for DICOMweb")
    max_associations: int = Field(4, ge=1, le=32, description="parallel retrieves")
    timeout_seconds: float = Field(30.0, gt=0)
    storage_bind: str = Field("0.0.0.0", description="interface our Storage SCP listens on")
    retrieve_attempts: int = Field(
        3, ge=1, le=10, description="tries per series; a retry fetches only what is missing"
    )
    retry_backoff_seconds: float = Field(1.0, ge=0, description="first retry delay, doubled")
    verify_tls: bool = Field(True, description="verify the DICOMweb server's certificate")
    tls: TlsConfig | None = Field(
        None, description="TLS toward the node (DIMSE or DICOMweb); none: plain TCP for DIMSE"
    )

    @model_validator(mode="after")
    def _check_transport(self) -> PacsNodeConfig:
        if self.transport == "dicomweb" and not self.dicomweb_url:
            raise ValueError("transport 'dicomweb' needs dicomweb_url (e.g. http://pacs/dicom-web)")
        if self.transport == "dimse" and self.retrieve == "wado":
            raise ValueError(
                "retrieve 'wado' needs transport 'dicomweb'; DIMSE retrieves by 'c-get' or 'c-move'"
            )
        return self


class RunnerConfig(_Section):
    """Local runner: how many jobs run at once, and the retry budget per stage."""

    workers: int = Field(1, ge=1)
    max_attempts: int = Field(3, ge=1, description="attempts per stage before the job fails")
    retry_backoff_seconds: float = Field(2.0, ge=0)


class ModelEndpointConfig(_Section):
    """Where one model is served; no URL means ONNX Runtime in-process."""

    url: str | None = Field(None, description="KServe V2 base URL, e.g. http://host:8080")
    version: str | None = Field(None, description="pin a model version; default: served one")
    timeout_seconds: float = Field(120.0, gt=0)
    attempts: int = Field(5, ge=1, description="tries per call on connection errors and 503")
    backoff_seconds: float = Field(0.5, ge=0, description="first retry delay, doubled each try")
    max_backoff_seconds: float = Field(8.0, ge=0, description="cap on one retry delay")


class ModelsConfig(_Section):
    """Model weights directory and per-model endpoints."""

    dir: Path | None = Field(None, description="directory of models/<name>/; default: bundled")
    endpoints: dict[str, ModelEndpointConfig] = Field(default_factory=dict)


class BrandingConfig(_Section):
    """Institutional look of the PDF report."""

    institution: str = "radpipe"
    department: str = "Radiology"
    logo: Path | None = None
    primary_color: str = Field("#1f3a5f", pattern=r"^#[0-9a-fA-F]{6}$")
    footer: str = "Research use only unless validated locally."


class WarehouseConfig(_Section):
    """Results warehouse (SQLAlchemy URL); default: SQLite in DATA_DIR."""

    url: str | None = None


class WebConfig(_Section):
    """The web front end (``radpipe web``): sign-in, sessions, audit log, which runner."""

    mode: Literal["local", "cluster"] = Field(
        "local", description="local: jobs run in the web process; cluster: AnalysisJob resources"
    )
    namespace: str = Field("radpipe", description="cluster mode: namespace of AnalysisJobs")
    kubeconfig: Path | None = Field(
        None, description="cluster mode: kubeconfig file; default in-cluster, then ~/.kube/config"
    )
    users_file: Path | None = Field(
        None, description="local user file (YAML); default DATA_DIR/web-users.yaml"
    )
    session_secret: SecretStr | None = Field(
        None, description="cookie signing key; default a random key kept in DATA_DIR/web/"
    )
    session_max_age_seconds: int = Field(8 * 3600, ge=60, description="sign-in lifetime")
    secure_cookies: bool = Field(False, description="send cookies over HTTPS only (behind TLS)")
    audit_log: Path | None = Field(
        None, description="audit log (JSON lines); default DATA_DIR/audit.log"
    )
    workers: int | None = Field(
        None, ge=1, description="local mode: jobs run at once; default runner.workers"
    )
    launch_autosubmit: bool = Field(
        True, description="let /launch?...&submit=1 submit for a signed-in user"
    )
    oidc_issuer: str | None = Field(None, description="OIDC issuer URL (hospital IdP)")
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_scopes: str = "openid profile email"
    oidc_roles_claim: str = Field("roles", description="ID-token claim listing groups/roles")
    oidc_role_map: dict[str, str] = Field(
        default_factory=dict,
        description="IdP group -> radpipe role (requester, radiologist, admin); "
        "unmapped names that are radpipe roles count as themselves",
    )
    oidc_default_role: Literal["requester", "radiologist", "admin"] | None = Field(
        None, description="role of an OIDC user with no mapped role; none: refused"
    )


class IntakeConfig(_Section):
    """The DICOM receiver (``radpipe receive``): studies pushed to radpipe start jobs by rule."""

    ae_title: str = Field("RADPIPE-IN", min_length=1, max_length=16, description="our AE title")
    bind: str = Field("0.0.0.0", description="interface the Storage SCP listens on")
    port: int = Field(11112, ge=0, le=65535, description="DICOM port (0: any free port)")
    allowed_calling_aes: list[str] = Field(
        default_factory=list,
        description="calling AE titles accepted; an association from any other is rejected "
        "(empty: accept none)",
    )
    quiet_period_seconds: float = Field(
        30.0, gt=0, description="a study is complete after this long with no new instance"
    )
    spool_prefix: str = Field(
        "intake/", description="artifact-store prefix the received studies are spooled under"
    )
    rules: list[dict[str, Any]] = Field(
        default_factory=list, description="routing rules (see `radpipe rules test`)"
    )
    rules_file: Path | None = Field(
        None, description="YAML file (or directory of them) with routing rules; a ConfigMap"
    )
    submit_to: Literal["local", "cluster"] = Field(
        "local", description="local: the local runner; cluster: AnalysisJob resources"
    )
    namespace: str = Field("radpipe", description="cluster: namespace of the AnalysisJobs")
    max_associations: int = Field(16, ge=1, description="associations served at once")
    spool_retention_hours: float = Field(
        24.0,
        ge=0,
        description="a spooled study's instances are deleted this long after every job it "
        "started has ended (Succeeded, Failed or Cancelled)",
    )
    spool_cleanup_interval_seconds: float = Field(
        600.0, gt=0, description="how often the receiver deletes expired spools (and at start)"
    )
    tls: TlsConfig | None = Field(
        None, description="serve DICOM over TLS (cert_file and key_file needed); none: plain TCP"
    )


class FhirConfig(_Section):
    """The FHIR R4 server results go to (DiagnosticReport + Observations); no endpoint: off."""

    endpoint: str | None = Field(None, description="FHIR base URL, e.g. https://emr/fhir")
    username: str | None = Field(None, description="HTTP Basic user")
    password: SecretStr | None = Field(None, description="HTTP Basic password (use the env)")
    token: SecretStr | None = Field(None, description="bearer token (use the env)")
    timeout_seconds: float = Field(30.0, gt=0, description="per request")
    attempts: int = Field(3, ge=1, le=10, description="tries before the job waits")
    backoff_seconds: float = Field(1.0, ge=0, description="first retry delay, doubled")
    verify_tls: bool = Field(True, description="verify the server's certificate")


class Settings(BaseSettings):
    """The whole radpipe configuration."""

    model_config = SettingsConfigDict(
        env_prefix="RADPIPE_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    data_dir: Path = Field(
        Path.home() / ".local" / "share" / "radpipe",
        description="where the embedded defaults keep their files",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    store: StoreConfig = Field(default_factory=StoreConfig)
    pacs: dict[str, PacsNodeConfig] = Field(default_factory=dict, description="PACS nodes by name")
    default_pacs: str | None = Field(None, description="node used when a job names none")
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    branding: BrandingConfig = Field(default_factory=BrandingConfig)
    warehouse: WarehouseConfig = Field(default_factory=WarehouseConfig)
    apps_dir: Path | None = Field(None, description="extra AnalysisApp YAML files")
    web: WebConfig = Field(default_factory=WebConfig)
    intake: IntakeConfig = Field(default_factory=IntakeConfig)
    fhir: FhirConfig = Field(default_factory=FhirConfig)

    @model_validator(mode="after")
    def _fill_derived_paths(self) -> Settings:
        if self.store.root is None:
            self.store.root = self.data_dir / "artifacts"
        if self.warehouse.url is None:
            self.warehouse.url = f"sqlite:///{self.data_dir / 'warehouse.db'}"
        if self.default_pacs is not None and self.default_pacs not in self.pacs:
            raise ValueError(f"default_pacs {self.default_pacs!r} is not one of the pacs nodes")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init kwargs; the environment must win over it.
        return (env_settings, init_settings, file_secret_settings)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return loaded


def config_path(explicit: Path | None = None) -> Path | None:
    """The config file in force: ``explicit``, then ``$RADPIPE_CONFIG``, then ./radpipe.yaml."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get("RADPIPE_CONFIG")
    if from_env:
        return Path(from_env)
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_settings(path: Path | None = None) -> Settings:
    """Load and validate the configuration; errors name the offending key and file."""
    source = config_path(path)
    values = _read_yaml(source) if source is not None else {}
    try:
        return Settings(**values)
    except ValidationError as err:
        where = f" in {source}" if source else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"invalid configuration{where}: {problems}") from err
