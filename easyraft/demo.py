"""`easyraft demo`: a local 3-node KV cluster, a leader crash, a recovery.

Starts three `easyraft kv` processes on 127.0.0.1 (free ports, a temporary
directory), writes and reads through different nodes, kills the leader with
SIGKILL, keeps writing through the survivors, restarts the dead node and
shows it catching up. Every process it starts is stopped before it returns.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, body: bytes | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Cluster:
    """N kv processes on loopback, in a temporary directory."""

    def __init__(self, n: int = 3, tickms: int = 50, base_dir: str | None = None) -> None:
        self.dir = base_dir or tempfile.mkdtemp(prefix="easyraft-demo-")
        self._own_dir = base_dir is None
        self.raft_ports = [free_port() for _ in range(n)]
        self.http_ports = [free_port() for _ in range(n)]
        self.ids = list(range(1, n + 1))
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        peers = [{"id": i, "url": f"http://127.0.0.1:{p}"} for i, p in zip(self.ids, self.raft_ports)]
        for i in self.ids:
            cfg = {"id": i, "cluster_id": 0x5EED, "peers": peers, "tickms": tickms,
                   "election_tick": 10, "heartbeat_tick": 1, "boostrap_timeout": 0,
                   "waldir": os.path.join(self.dir, f"wal{i}"),
                   "snapdir": os.path.join(self.dir, f"snap{i}"), "snap_count": 1000}
            with open(self.config_path(i), "w") as f:
                json.dump(cfg, f, indent=2)

    def config_path(self, i: int) -> str:
        return os.path.join(self.dir, f"node{i}.json")

    def api(self, i: int) -> str:
        return f"http://127.0.0.1:{self.http_ports[i - 1]}"

    def start(self, i: int) -> None:
        log = open(os.path.join(self.dir, f"node{i}.log"), "ab")
        self.procs[i] = subprocess.Popen(
            [sys.executable, "-m", "easyraft", "kv", "--config", self.config_path(i),
             "--http", f"127.0.0.1:{self.http_ports[i - 1]}"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def kill(self, i: int) -> None:
        p = self.procs.pop(i, None)
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait(10)

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for i, p in list(self.procs.items()):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        self.procs.clear()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def status(self, i: int) -> dict[str, Any] | None:
        try:
            code, body = http("GET", self.api(i) + "/status", timeout=2.0)
        except OSError:
            return None
        return json.loads(body)["status"] if code == 200 else None

    def wait_leader(self, among: list[int], timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leaders = set()
            for i in among:
                st = self.status(i)
                if st is None:
                    break
                leaders.add(st["leader"])
            else:
                if len(leaders) == 1 and 0 not in leaders and leaders <= set(among):
                    return leaders.pop()
            time.sleep(0.1)
        raise TimeoutError(f"no leader among nodes {among} within {timeout}s")

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def run() -> int:
    def say(msg: str) -> None:
        print(msg, flush=True)

    with Cluster() as c:
        say(f"easyraft demo: 3 nodes in {c.dir}")
        for i in c.ids:
            c.start(i)
            say(f"  node {i}: raft http://127.0.0.1:{c.raft_ports[i - 1]}, kv {c.api(i)}")
        leader = c.wait_leader(c.ids)
        say(f"leader elected: node {leader}")

        for k in range(5):
            code, _ = http("PUT", f"{c.api(1)}/key{k}", f"value-{k}".encode())
            assert code == 204, f"PUT through node 1 failed with {code}"
        code, body = http("GET", f"{c.api(3)}/key4")
        say(f"PUT key0..key4 through node 1; linearizable GET key4 on node 3 -> {code} {body!r}")

        say(f"killing the leader (node {leader}) with SIGKILL")
        c.kill(leader)
        survivors = [i for i in c.ids if i != leader]
        new_leader = c.wait_leader(survivors)
        say(f"new leader: node {new_leader}")
        code, _ = http("PUT", f"{c.api(survivors[0])}/after-crash", b"still-writable")
        say(f"PUT after-crash through node {survivors[0]} -> {code}")

        say(f"restarting node {leader} from its WAL")
        c.start(leader)
        deadline = time.monotonic() + 20
        code, body = 0, b""
        while time.monotonic() < deadline:
            try:
                code, body = http("GET", f"{c.api(leader)}/after-crash?stale=1", timeout=2.0)
            except OSError:
                code = 0
            if code == 200:
                break
            time.sleep(0.1)
        say(f"node {leader} caught up: local GET after-crash -> {code} {body!r}")
        st = c.status(leader) or {}
        say(f"node {leader} status: term {st.get('term')}, leader {st.get('leader')}, "
            f"commit {st.get('commit')}, applied {st.get('applied')}")
        ok = code == 200 and body == b"still-writable"
        say("demo finished: " + ("OK" if ok else "FAILED"))
        return 0 if ok else 1
