"""JWKS over real TLS on loopback: certificates are verified by both fetchers.

The sync fetcher runs on its own deadline-enforcing network backend, so this
pins that it still does TLS properly (handshake, chain and host name checks).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from clerkguard import ClerkAuth
from clerkguard import _http as http_module
from clerkguard.testing import LocalIssuer

from .support import Check


def self_signed(directory: Path, host: str) -> tuple[Path, Path]:
    """A certificate for ``host`` (an IP address), signed by itself; returns (cert, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def tls_jwks(issuer: LocalIssuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An https JWKS endpoint on 127.0.0.1 serving ``issuer``'s keys; yields (url, cert file)."""
    cert_file, key_file = self_signed(tmp_path_factory.mktemp("tls"), "127.0.0.1")
    jwks = issuer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            pass

        def do_GET(self) -> None:
            body = json.dumps(jwks.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class QuietServer(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # clients that reject the certificate hang up mid-handshake

    server = QuietServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json", cert_file
    finally:
        server.shutdown()
        server.server_close()


async def test_an_untrusted_certificate_is_refused(
    issuer: LocalIssuer, tls_jwks: tuple[str, Path], check: Check
) -> None:
    url, _ = tls_jwks
    auth = ClerkAuth(jwks_uri=url, issuer=issuer.issuer, http_timeout=2, env={})
    try:
        assert await check(auth, issuer.mint()) == "503 jwks-unavailable"
        assert auth.stats.last_error in ("connection failed", "connection error")
    finally:
        await auth.aclose()


async def test_a_trusted_certificate_works(
    issuer: LocalIssuer, tls_jwks: tuple[str, Path], check: Check, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert_file = tls_jwks
    trusting = ssl.create_default_context(cafile=str(cert_file))  # as if it were a public CA
    monkeypatch.setattr(http_module, "_ssl_context", trusting)
    auth = ClerkAuth(jwks_uri=url, issuer=issuer.issuer, http_timeout=2, env={})
    try:
        assert await check(auth, issuer.mint()) == "ok"
        assert auth.stats.key_ids == (issuer.kid,)
    finally:
        await auth.aclose()


async def test_the_host_name_is_checked(
    issuer: LocalIssuer, tls_jwks: tuple[str, Path], check: Check, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert_file = tls_jwks
    monkeypatch.setattr(http_module, "_ssl_context", ssl.create_default_context(cafile=str(cert_file)))
    # Same server and trusted certificate, but reached under a name it was not issued for.
    auth = ClerkAuth(
        jwks_uri=url.replace("127.0.0.1", "localhost"), issuer=issuer.issuer, http_timeout=2, env={}
    )
    try:
        assert await check(auth, issuer.mint()) == "503 jwks-unavailable"
    finally:
        await auth.aclose()
