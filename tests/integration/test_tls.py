"""DICOM over TLS: the intake receiver serves TLS and radpipe's DIMSE client speaks it.

A throwaway CA and a server certificate for 127.0.0.1 (EC keys: fast) are made with the
``openssl`` CLI.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pynetdicom import AE

from radpipe.config import IntakeConfig, PacsNodeConfig, Settings, TlsConfig
from radpipe.dicom.contexts import VERIFICATION
from radpipe.dicom.dimse import DimseClient
from radpipe.dicom.errors import PacsError
from radpipe.dicom.nodes import PacsNode
from radpipe.dicom.tls import TlsConfigError, requests_options, server_context
from radpipe.intake.receiver import Intake, Receiver
from radpipe.intake.rules import load_rules
from radpipe.store.local import LocalStore

#: openssl req arguments for a new unencrypted P-256 key.
EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ca.pem`` and ``server.pem``/``server.key`` (CN and SAN 127.0.0.1) signed by it."""
    tmp_path = tmp_path_factory.mktemp("pki")
    _openssl(
        "req", "-x509", *EC_KEY, "-days", "1",
        "-subj", "/CN=radpipe test CA", "-keyout", "ca.key", "-out", "ca.pem",
        cwd=tmp_path,
    )  # fmt: skip
    _openssl(
        "req", *EC_KEY, "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr",
        cwd=tmp_path,
    )  # fmt: skip
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "1", "-extfile", "san.ext", "-out", "server.pem",
        cwd=tmp_path,
    )  # fmt: skip
    return tmp_path


@pytest.fixture
def tls_receiver(pki: Path, settings: Settings) -> Iterator[Receiver]:
    """The intake receiver serving TLS on a free loopback port, allowing calling AE RADPIPE."""
    settings.intake = IntakeConfig(
        ae_title="RADPIPE-IN",
        bind="127.0.0.1",
        port=0,
        allowed_calling_aes=["RADPIPE"],
        tls=TlsConfig(cert_file=pki / "server.pem", key_file=pki / "server.key"),
    )
    store = LocalStore(settings.data_dir / "store")
    intake = Intake(settings, store, load_rules([], None), submitter=None)  # type: ignore[arg-type]
    receiver = Receiver(intake)
    receiver.start()
    yield receiver
    receiver.stop()


def _node(port: int, tls: TlsConfig | None) -> PacsNode:
    config = PacsNodeConfig(
        ae_title="RADPIPE-IN", host="127.0.0.1", port=port, timeout_seconds=3, tls=tls
    )
    return PacsNode("tls-test", config)


def test_echo_over_tls_succeeds_and_plain_association_fails(
    tls_receiver: Receiver, pki: Path
) -> None:
    tls = TlsConfig(ca_file=pki / "ca.pem")
    assert DimseClient(_node(tls_receiver.port, tls)).echo() >= 0

    with pytest.raises(PacsError):
        DimseClient(_node(tls_receiver.port, None)).echo()

    ae = AE(ae_title="RADPIPE")
    ae.add_requested_context(VERIFICATION)
    ae.acse_timeout = ae.network_timeout = 3
    assoc = ae.associate("127.0.0.1", tls_receiver.port, ae_title="RADPIPE-IN")
    assert not assoc.is_established


def test_untrusted_server_certificate_is_refused(tls_receiver: Receiver, tmp_path: Path) -> None:
    """Without our CA the system CAs are used, and they do not trust the test CA."""
    with pytest.raises(PacsError):
        DimseClient(_node(tls_receiver.port, TlsConfig())).echo()


def test_tls_config_errors_and_requests_options(tmp_path: Path) -> None:
    with pytest.raises(TlsConfigError, match="cert_file"):
        server_context(TlsConfig())
    with pytest.raises(TlsConfigError, match="cannot load"):
        server_context(TlsConfig(cert_file=tmp_path / "missing.pem"))
    assert requests_options(None, False) == (False, None)
    ca, cert, key = tmp_path / "ca.pem", tmp_path / "c.pem", tmp_path / "c.key"
    assert requests_options(TlsConfig(ca_file=ca, cert_file=cert, key_file=key), True) == (
        str(ca),
        (str(cert), str(key)),
    )
    assert requests_options(TlsConfig(ca_file=ca, verify=False), True) == (False, None)
