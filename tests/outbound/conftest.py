"""TLS for the stand-ins: a CA made for the session, a certificate from it, and one from no CA
the relay trusts."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def tls(ca: trustme.CA) -> ssl.SSLContext:
    """A server's TLS, with a certificate the test CA signed for 127.0.0.1."""
    return server_context(ca)


@pytest.fixture(scope="session")
def untrusted_tls() -> ssl.SSLContext:
    """A server's TLS, with a certificate from a CA nobody was told to trust."""
    return server_context(trustme.CA())


@pytest.fixture
def trust_ca(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """SSL_CERT_FILE names the test CA's bundle, as an operator would set it."""
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    return bundle
