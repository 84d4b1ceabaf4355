"""TLS for DICOM connections: :class:`ssl.SSLContext` objects built from a :class:`TlsConfig`.

The DIMSE client passes :func:`client_context` to pynetdicom's ``AE.associate(tls_args=...)``;
the intake receiver passes :func:`server_context` to ``AE.start_server(ssl_context=...)``.
Both require TLS 1.2 or newer.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

from radpipe.dicom.errors import NodeConfigError

if TYPE_CHECKING:
    from radpipe.config import TlsConfig


class TlsConfigError(NodeConfigError):
    """A certificate, key or CA file named in a ``tls`` section cannot be used."""


def _load(what: str, load: Callable[..., object], *args: object) -> None:
    """Call ``load(*args)``, turning unreadable or invalid files into a TlsConfigError."""
    try:
        load(*args)
    except (OSError, ssl.SSLError) as err:
        raise TlsConfigError(
            f"cannot load the TLS {what}: {err}",
            hint="check the paths under `tls:` (PEM files, readable by radpipe)",
        ) from err


def client_context(config: TlsConfig) -> ssl.SSLContext:
    """The context for connecting to a server: verifies it against ``ca_file`` (or the
    system CAs) and its host name unless ``verify`` is off; presents ``cert_file`` if set."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if config.verify:
        if config.ca_file:
            _load("CA file", ctx.load_verify_locations, str(config.ca_file))
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if config.cert_file:
        key = str(config.key_file) if config.key_file else None
        _load("client certificate", ctx.load_cert_chain, str(config.cert_file), key)
    return ctx


def server_context(config: TlsConfig) -> ssl.SSLContext:
    """The context for serving: presents ``cert_file``/``key_file`` (required); with
    ``ca_file`` and ``verify``, clients must present a certificate signed by that CA."""
    if not config.cert_file:
        raise TlsConfigError(
            "serving DICOM over TLS needs tls.cert_file (and tls.key_file)",
            hint="set them to the PEM certificate and key of this receiver",
        )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    key = str(config.key_file) if config.key_file else None
    _load("server certificate", ctx.load_cert_chain, str(config.cert_file), key)
    if config.ca_file and config.verify:
        _load("CA file", ctx.load_verify_locations, str(config.ca_file))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def requests_options(
    config: TlsConfig | None, verify_tls: bool
) -> tuple[bool | str, tuple[str, str] | str | None]:
    """``(verify, cert)`` for a :class:`requests.Session` (DICOMweb).

    Without a ``tls`` section the node's ``verify_tls`` applies, as before.
    """
    if config is None:
        return verify_tls, None
    verify: bool | str = config.verify and verify_tls
    if verify and config.ca_file:
        verify = str(config.ca_file)
    cert: tuple[str, str] | str | None = None
    if config.cert_file:
        cert = str(config.cert_file)
        if config.key_file:
            cert = (cert, str(config.key_file))
    return verify, cert
