"""Real receivers on loopback: an HTTP webhook receiver and an SMTP server with STARTTLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    # What a receiver keeps after dropping repeated idempotency keys.
    effective: dict[str, bytes] = field(default_factory=dict)


class WebhookReceiver:
    """A webhook endpoint that records every request and honours Idempotency-Key."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.got = Received()
        got = self.got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                got.requests.append((headers, body))
                got.effective.setdefault(headers.get("idempotency-key", ""), body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A throwaway TLS certificate for 127.0.0.1 (the test server's, not a product secret)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Collect:
    def __init__(self) -> None:
        self.messages: list[tuple[bool, str, list[str], bytes]] = []

    async def handle_DATA(self, _server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (session.ssl is not None, envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        )
        return "250 OK"


class SmtpServer:
    """aiosmtpd on loopback: STARTTLS offered and required (the default), implicit TLS
    (``tls="implicit"``, SMTPS), or clear text only (``tls="none"``, no STARTTLS offered)."""

    def __init__(self, folder: Path, tls: str = "starttls") -> None:
        cert, key = self_signed(folder)
        self.cert = cert
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert, key)
        self.client_ctx = ssl.create_default_context(cafile=str(cert))
        self.handler = _Collect()
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if tls == "starttls":
            kwargs = {"tls_context": server_ctx, "require_starttls": True}
        elif tls == "implicit":
            kwargs = {"ssl_context": server_ctx}
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()

    @property
    def messages(self) -> list[tuple[bool, str, list[str], bytes]]:
        return self.handler.messages

    def stop(self) -> None:
        self.controller.stop()
