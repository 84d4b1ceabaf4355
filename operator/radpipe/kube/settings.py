"""Operator settings: environment variables with the ``RADPIPE_OPERATOR_`` prefix.

They sit beside (not inside) the main :class:`radpipe.config.Settings`, which the operator
also loads for its artifact store: the store settings are the ones the stage pods get.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from radpipe import __version__

Retention = Literal["delete", "keep", "keep-reports"]


class OperatorSettings(BaseSettings):
    """How the operator runs stage Jobs, queues, retries, and cleans up."""

    model_config = SettingsConfigDict(env_prefix="RADPIPE_OPERATOR_", extra="forbid")

    stage_image: str = Field(
        f"radpipe/operator:{__version__}", description="image whose entrypoint is `radpipe`"
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    stage_service_account: str = Field(
        "radpipe-stage-runner", description="least-privilege account the stage pods run as"
    )
    stage_env_secret: str | None = Field(
        "radpipe-stage-env",
        description="Secret in the job's namespace whose keys become the stage pods' "
        "environment (RADPIPE_STORE__* for MinIO, PACS credentials...); None: no envFrom",
    )
    max_running_per_namespace: int = Field(
        10, ge=1, description="stage Jobs running at once in one namespace; others queue"
    )
    namespace_limits: dict[str, int] = Field(
        default_factory=dict, description="per-namespace overrides of the limit above"
    )
    max_attempts: int = Field(3, ge=1, description="attempts per stage (app may override)")
    retry_backoff_seconds: float = Field(5.0, ge=0, description="first retry delay, doubled")
    max_backoff_seconds: float = Field(300.0, ge=0)
    retention: Retention = Field(
        "delete",
        description="on AnalysisJob deletion: delete its artifacts, keep them, or keep only "
        "the report stage's outputs; annotation radpipe.io/retention overrides per job",
    )
    resync_seconds: float = Field(60.0, gt=0, description="safety-net reconcile interval")
    log_tail_lines: int = Field(20, ge=1, le=200, description="pod log lines kept on failure")
    workers: int = Field(16, ge=1, description="threads that run reconciles")
    metrics_port: int | None = Field(8000, description="Prometheus /metrics port; None: off")

    def limit_for(self, namespace: str) -> int:
        """The concurrency limit of ``namespace``."""
        return self.namespace_limits.get(namespace, self.max_running_per_namespace)
