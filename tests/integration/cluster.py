"""In-process clusters of RaftServers on 127.0.0.1 for integration tests.

Each server runs its own loop thread and applier thread, talks to the others
over real sockets (free ports picked at run time) and keeps its files under
the test's tmp_path. `LocalCluster.close()` stops every server it started.
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Any

from easyraft.callbacks import Callbacks
from easyraft.server import RaftServer


_handed_out: set[int] = set()


def free_port() -> int:
    """A port free on 127.0.0.1 now and not handed out before in this process
    (the kernel may offer a just-closed port again)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


class Recorder(Callbacks):
    """A state machine that records every callback, for assertions."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.applied: list[tuple[int, int, bytes]] = []     # (index, term, data)
        self.restored: list[tuple[int, int, bytes]] = []
        self.states: list[Any] = []
        self.fail_recover = False
        self.commit_hook = None

    def on_commit(self, data: bytes, term: int, index: int) -> int | None:
        if self.commit_hook is not None:
            rc = self.commit_hook(data, term, index)
            if rc is not None:
                with self.lock:
                    self.applied.append((index, term, data))
                return rc
        with self.lock:
            self.applied.append((index, term, data))
        return 0

    def get_snapshot(self) -> bytes:
        with self.lock:
            return repr(self.applied).encode()

    def recover_from_snapshot(self, data: bytes, term: int, index: int) -> int:
        if self.fail_recover:
            return 7
        import ast
        with self.lock:
            self.applied = ast.literal_eval(data.decode())
            self.restored.append((index, term, data))
        return 0

    def on_state_change(self, state: Any) -> None:
        with self.lock:
            self.states.append(state)

    def datas(self) -> list[bytes]:
        with self.lock:
            return [d for _, _, d in self.applied]


def wait_for(pred: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class LocalCluster:
    def __init__(self, tmp_path: Any, n: int = 3, cluster_id: int = 1, **cfg: Any) -> None:
        self.tmp = tmp_path
        self.cluster_id = cluster_id
        self.extra = {"tickms": 20, "election_tick": 10, "heartbeat_tick": 1,
                      "boostrap_timeout": 0, **cfg}
        self.urls = {i: f"http://127.0.0.1:{free_port()}" for i in range(1, n + 1)}
        self.servers: dict[int, RaftServer] = {}
        self.sms: dict[int, Recorder] = {}

    def config(self, i: int, **over: Any) -> dict[str, Any]:
        urls = over.pop("urls", self.urls)
        d = {"id": i, "cluster_id": self.cluster_id,
             "waldir": str(self.tmp / f"c{self.cluster_id}-wal{i}"),
             "snapdir": str(self.tmp / f"c{self.cluster_id}-snap{i}"),
             "peers": [{"id": k, "url": u} for k, u in sorted(urls.items())], **self.extra}
        d.update(over)
        return d

    def start(self, *ids: int, sm: Recorder | None = None, **over: Any) -> None:
        ids = ids or tuple(self.urls)
        errors: list[BaseException] = []

        def run(i: int) -> None:
            try:
                rec = sm if sm is not None else Recorder()
                self.sms[i] = rec
                self.servers[i] = RaftServer(self.config(i, **over), rec)
            except BaseException as e:  # surfaced below
                errors.append(e)
        threads = [threading.Thread(target=run, args=(i,)) for i in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def stop(self, i: int) -> None:
        s = self.servers.pop(i, None)
        if s is not None:
            s.close()

    def close(self) -> None:
        for i in list(self.servers):
            self.stop(i)

    def leader(self, timeout: float = 10.0, among: list[int] | None = None) -> int:
        ids = among or list(self.servers)
        found: list[int] = []

        def agreed() -> bool:
            leads = {self.servers[i].status()["leader"] for i in ids}
            # The leader must be one of `ids`: right after a leader stops,
            # the others still name it until they elect a new one.
            if len(leads) == 1 and leads <= set(ids):
                found.append(leads.pop())
                return True
            return False
        wait_for(agreed, timeout, "all nodes to agree on a leader")
        return found[-1]

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
