"""TLS settings for https:// peer URLs.

One TLSConfig serves both directions, as in etcd's peer-cert-file /
peer-key-file / peer-trusted-ca-file: the certificate is what this node
presents as a server and, for mutual authentication, as a client. Giving a
CA turns on mutual authentication: the listener then refuses any client
without a certificate signed by that CA, and dialers verify peers against it.
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass

from easyraft.transport.protocol import TransportError


@dataclass(frozen=True)
class TLSConfig:
    """Certificate, key and optional CA for https:// peers.

    :param cert_file: PEM certificate (chain) this node presents.
    :param key_file: PEM private key of that certificate.
    :param ca_file: PEM CA bundle; when given, peers must present a certificate
        it signed (mutual TLS) and servers are verified against it. When absent,
        clients are not asked for certificates and servers are verified against
        the system's default CAs.
    :param check_hostname: verify that the server certificate names the host of
        the peer URL (IP addresses work when the certificate lists them).
    """

    cert_file: str
    key_file: str
    ca_file: str | None = None
    check_hostname: bool = True

    def server_context(self) -> ssl.SSLContext:
        """Return the SSLContext for the listener; TransportError if files are unusable."""
        try:
            return self._server_context()
        except (OSError, ssl.SSLError) as e:
            raise TransportError(f"transport: TLS server setup failed: {e}") from e

    def client_context(self) -> ssl.SSLContext:
        """Return the SSLContext used to dial peers; TransportError if files are unusable."""
        try:
            return self._client_context()
        except (OSError, ssl.SSLError) as e:
            raise TransportError(f"transport: TLS client setup failed: {e}") from e

    def _server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        if self.ca_file:
            ctx.load_verify_locations(self.ca_file)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def _client_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.ca_file:
            ctx.load_verify_locations(self.ca_file)
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        ctx.check_hostname = self.check_hostname
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx
