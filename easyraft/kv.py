"""A replicated key-value store with an HTTP API (this project's raftexample).

    easyraft kv --config node1.json --http 127.0.0.1:8001

HTTP API (raftexample's, plus status):
    PUT    /<key>       body = value      -> 204 once committed and applied here
    GET    /<key>                         -> 200 value (linearizable: ReadIndex first),
                                             404 if absent; ?stale=1 skips ReadIndex
    DELETE /<key>                         -> 204 once committed and applied here
    POST   /cluster/<id>  body = peer URL -> 204 once the member is added
    DELETE /cluster/<id>                  -> 204 once the member is removed
    GET    /status                        -> JSON of RAFT_GetStatus + peers
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from easyraft.callbacks import Callbacks
from easyraft.errors import (
    BusyError,
    ProposalDroppedError,
    RaftError,
    RaftTimeoutError,
    ServerStoppedError,
    TooLargeError,
)
from easyraft.server import RaftServer

logger = logging.getLogger("easyraft.kv")

MAX_VALUE = 1 << 20


class KVStore(Callbacks):
    """The state machine: a dict, changed only by committed entries.

    Entry format: JSON ``["put", key, value]`` or ``["del", key]`` (values
    are text; the HTTP layer passes bytes as latin-1 to keep them exact).
    """

    def __init__(self) -> None:
        self._data: dict[str, str] = {}
        self._lock = threading.Lock()
        self.applied_index = 0

    @staticmethod
    def encode_put(key: str, value: bytes) -> bytes:
        return json.dumps(["put", key, value.decode("latin-1")]).encode()

    @staticmethod
    def encode_delete(key: str) -> bytes:
        return json.dumps(["del", key]).encode()

    def on_commit(self, data: bytes, term: int, index: int) -> int:
        try:
            op = json.loads(data)
            with self._lock:
                if op[0] == "put":
                    self._data[op[1]] = op[2]
                elif op[0] == "del":
                    self._data.pop(op[1], None)
                else:
                    return 1
                self.applied_index = index
        except (ValueError, IndexError, TypeError):
            return 1
        return 0

    def get(self, key: str) -> bytes | None:
        with self._lock:
            v = self._data.get(key)
        return None if v is None else v.encode("latin-1")

    def get_snapshot(self) -> bytes:
        with self._lock:
            return json.dumps(self._data, sort_keys=True).encode()

    def recover_from_snapshot(self, data: bytes, term: int, index: int) -> int:
        state = json.loads(data)
        if not isinstance(state, dict):
            return 1
        with self._lock:
            self._data = state
            self.applied_index = index
        return 0

    def on_state_change(self, state: Any) -> None:
        logger.info("kv: this node is now %s", state.name)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


def _error_status(e: BaseException) -> HTTPStatus:
    if isinstance(e, (ValueError, TypeError, TooLargeError)):
        return HTTPStatus.BAD_REQUEST
    if isinstance(e, BusyError):
        return HTTPStatus.CONFLICT
    if isinstance(e, (RaftTimeoutError, ProposalDroppedError)):
        return HTTPStatus.SERVICE_UNAVAILABLE
    return HTTPStatus.INTERNAL_SERVER_ERROR


class _Handler(BaseHTTPRequestHandler):
    server: _KVHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("kv http: " + format, *args)

    def _reply(self, status: HTTPStatus, body: bytes = b"", ctype: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _body(self) -> bytes:
        try:
            n = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise ValueError("bad Content-Length") from None
        if n < 0 or n > MAX_VALUE:
            raise TooLargeError(f"body of {n} bytes exceeds {MAX_VALUE}")
        return self.rfile.read(n)

    def _route(self) -> tuple[str, bool]:
        parts = urlsplit(self.path)
        return unquote(parts.path.lstrip("/")), "stale=1" in parts.query

    def _guard(self, fn: Any) -> None:
        try:
            fn()
        except ServerStoppedError as e:
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, f"server stopped: {e}\n".encode())
        except (RaftError, ValueError, TypeError) as e:
            self._reply(_error_status(e), f"{e}\n".encode())

    def do_GET(self) -> None:  # noqa: N802
        key, stale = self._route()
        kv, raft = self.server.kv, self.server.raft

        def get() -> None:
            if key == "status":
                body = json.dumps({"status": raft.status(), "peers": raft.peers_status()})
                self._reply(HTTPStatus.OK, body.encode(), "application/json")
                return
            if not key:
                raise ValueError("empty key")
            if not stale:
                raft.read_barrier(timeout=self.server.timeout)
            v = kv.get(key)
            if v is None:
                self._reply(HTTPStatus.NOT_FOUND, b"")
            else:
                self._reply(HTTPStatus.OK, v, "application/octet-stream")
        self._guard(get)

    def do_PUT(self) -> None:  # noqa: N802
        key, _ = self._route()

        def put() -> None:
            if not key or key.startswith("cluster/") or key == "status":
                raise ValueError(f"invalid key {key!r}")
            value = self._body()
            self.server.raft.propose_and_wait(KVStore.encode_put(key, value),
                                              timeout=self.server.timeout)
            self._reply(HTTPStatus.NO_CONTENT)
        self._guard(put)

    def do_POST(self) -> None:  # noqa: N802
        key, _ = self._route()

        def add() -> None:
            if not key.startswith("cluster/"):
                raise ValueError("POST only on /cluster/<id>")
            node_id = int(key.split("/", 1)[1])
            url = self._body().decode("utf-8", errors="replace").strip()
            self.server.raft.add_server(node_id, url, timeout=self.server.timeout * 5)
            self._reply(HTTPStatus.NO_CONTENT)
        self._guard(add)

    def do_DELETE(self) -> None:  # noqa: N802
        key, _ = self._route()

        def delete() -> None:
            if key.startswith("cluster/"):
                node_id = int(key.split("/", 1)[1])
                self.server.raft.remove_server(node_id, timeout=self.server.timeout * 5)
            else:
                if not key:
                    raise ValueError("empty key")
                self.server.raft.propose_and_wait(KVStore.encode_delete(key),
                                                  timeout=self.server.timeout)
            self._reply(HTTPStatus.NO_CONTENT)
        self._guard(delete)


class _KVHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], raft: RaftServer, kv: KVStore,
                 timeout: float) -> None:
        super().__init__(addr, _Handler)
        self.raft = raft
        self.kv = kv
        self.timeout = timeout


def serve(config: Any, http_addr: tuple[str, int], *, timeout: float = 5.0,
          stop: threading.Event | None = None) -> None:
    """Run one KV node until `stop` is set (or SIGINT/SIGTERM)."""
    kv = KVStore()
    stop = stop or threading.Event()
    with RaftServer(config, kv) as raft:
        httpd = _KVHTTPServer(http_addr, raft, kv, timeout)
        t = threading.Thread(target=httpd.serve_forever, name="easyraft-kv-http", daemon=True)
        t.start()
        logger.warning("kv: node %d serving http://%s:%d (raft %s)", raft.id, *httpd.server_address[:2],
                       raft.config.url)
        try:
            while not stop.wait(0.2):
                if raft.stopped:
                    logger.warning("kv: raft server stopped; exiting")
                    break
        finally:
            httpd.shutdown()
            httpd.server_close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="easyraft kv", description="Run one node of the replicated KV store.")
    add_arguments(p)
    return run(p.parse_args(argv))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="JSON config file of this node")
    p.add_argument("--http", required=True, metavar="HOST:PORT", help="address of the KV HTTP API")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    p.add_argument("--log-level", default="WARNING")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host, _, port = args.http.rpartition(":")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    serve(args.config, (host or "127.0.0.1", int(port)), timeout=args.timeout, stop=stop)
    return 0
