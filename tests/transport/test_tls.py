"""https:// peers with certificates made by trustme for 127.0.0.1."""
from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
import trustme
from easyraft._core.codec import encode_frames
from easyraft._core.types import Message, MsgType

from tests.transport.conftest import count, peer
from tests.transport.test_rejections import head, statuses


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, str]:
    ca = trustme.CA()
    files = {"ca": tmp_path / "ca.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    for name in ("n1", "n2"):
        cert = ca.issue_cert("127.0.0.1", "localhost")
        files[name + "_cert"] = tmp_path / f"{name}.pem"
        files[name + "_key"] = tmp_path / f"{name}.key"
        cert.cert_chain_pems[0].write_to_path(str(files[name + "_cert"]))
        for pem in cert.cert_chain_pems[1:]:
            pem.write_to_path(str(files[name + "_cert"]), append=True)
        cert.private_key_pem.write_to_path(str(files[name + "_key"]))
    # A certificate from a CA the nodes do not trust.
    rogue = trustme.CA().issue_cert("127.0.0.1")
    files["rogue_cert"] = tmp_path / "rogue.pem"
    files["rogue_key"] = tmp_path / "rogue.key"
    rogue.cert_chain_pems[0].write_to_path(str(files["rogue_cert"]))
    rogue.private_key_pem.write_to_path(str(files["rogue_key"]))
    return {k: str(v) for k, v in files.items()}


def _client(port: int, ca: str, cert: str | None = None, key: str | None = None) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    raw = socket.create_connection(("127.0.0.1", port))
    raw.settimeout(30)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def _refused(port: int, ca: str, cert: str | None = None, key: str | None = None) -> bool:
    """True when the mTLS listener refuses this client before any HTTP is served."""
    try:
        with _client(port, ca, cert, key) as s:
            # TLS 1.3 reports a refused client certificate on the first read.
            s.sendall(head())
            return s.recv(4096) == b""
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True


def test_tls_mutual_peers_exchange_messages(spawn, pki):
    a = spawn("--id", 1, "--listen", "https://127.0.0.1:0", "--cert", pki["n1_cert"],
              "--key", pki["n1_key"], "--ca", pki["ca"])
    b = spawn("--id", 2, "--listen", "https://127.0.0.1:0", "--cert", pki["n2_cert"],
              "--key", pki["n2_key"], "--ca", pki["ca"])
    assert a.url.startswith("https://")
    a.call("add_peer", id=2, url=b.url)
    b.call("add_peer", id=1, url=a.url)
    a.call("send", to=2, type="MsgApp", count=20, entries=64, size=512)
    b.call("send", to=1, count=7)
    b.wait_for(lambda s: count(s, 1, "MsgApp") == 20, "appends over TLS")
    a.wait_for(lambda s: count(s, 2, "MsgHeartbeat") == 7, "heartbeats over TLS")
    a.call("snapshot", to=2, size=3 << 20)
    a.wait_for(lambda s: s["snap_reports"] == [[2, True]], "snapshot over TLS")


def test_tls_client_certificate_required(spawn, pki):
    a = spawn("--id", 1, "--listen", "https://127.0.0.1:0", "--cert", pki["n1_cert"],
              "--key", pki["n1_key"], "--ca", pki["ca"])
    assert _refused(a.port, pki["ca"])                                  # no client cert
    assert _refused(a.port, pki["ca"], pki["rogue_cert"], pki["rogue_key"])   # untrusted CA
    with _client(a.port, pki["ca"], pki["n2_cert"], pki["n2_key"]) as s:  # a trusted peer
        s.sendall(head() + encode_frames([Message(type=MsgType.MsgHeartbeat, to=1, frm=2)]))
        assert statuses(s.recv(4096)) == [101]
        a.wait_for(lambda st: count(st, 2, "MsgHeartbeat") == 1, "trusted client delivers")
    assert count(a.call("state"), 2, "MsgHeartbeat") == 1


def test_tls_without_ca_serves_clients_without_certificate(spawn, pki):
    # No CA given: server-only TLS. A plain TLS client (no certificate) may talk.
    a = spawn("--id", 1, "--listen", "https://127.0.0.1:0", "--cert", pki["n1_cert"],
              "--key", pki["n1_key"])
    with _client(a.port, pki["ca"]) as s:
        s.sendall(head() + encode_frames([Message(type=MsgType.MsgHeartbeat, to=1, frm=2)]))
        assert statuses(s.recv(4096)) == [101]
        a.wait_for(lambda st: count(st, 2, "MsgHeartbeat") == 1, "delivered without client cert")


def test_tls_dialer_rejects_untrusted_server(spawn, pki):
    # b presents a certificate from a CA that a does not trust: a never connects.
    a = spawn("--id", 1, "--listen", "https://127.0.0.1:0", "--cert", pki["n1_cert"],
              "--key", pki["n1_key"], "--ca", pki["ca"])
    b = spawn("--id", 2, "--listen", "https://127.0.0.1:0", "--cert", pki["rogue_cert"],
              "--key", pki["rogue_key"])
    a.call("add_peer", id=2, url=b.url)
    st = a.wait_for(lambda s: "CERTIFICATE_VERIFY_FAILED" in peer(s, 2)["error"],
                    "a refuses b's certificate")
    assert not peer(st, 2)["reachable"]
    assert b.call("state")["counts"] == {}
