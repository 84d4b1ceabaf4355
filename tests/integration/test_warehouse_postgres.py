"""The warehouse on a real PostgreSQL server (the cluster's database)."""

from __future__ import annotations

import pytest

from tests.unit.test_warehouse import exercise_warehouse

pytestmark = pytest.mark.integration


def test_postgres_warehouse_priors_and_idempotence(postgres_url: str) -> None:
    exercise_warehouse(postgres_url)
