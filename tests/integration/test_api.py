"""The RAFT_* mirror, seed-style callbacks and the asyncio RaftNode."""
from __future__ import annotations

import asyncio
import json
import logging

import pytest

import easyraft
from easyraft import aio

from .cluster import LocalCluster, free_port, wait_for


class SeedContext:
    """The C library's `struct Context`, in Python: camelCase, ctx first."""

    def __init__(self) -> None:
        self.committed: list[tuple[object, bytes, int, int]] = []
        self.states: list[object] = []

    def onCommit(self, ctx, data, term, index):  # noqa: N802
        self.committed.append((ctx, data, term, index))
        return 0

    def getSnapshot(self, ctx):  # noqa: N802
        return b"state"

    def recoverFromSnapshot(self, ctx, data, term, index):  # noqa: N802
        return 0

    def onStateChange(self, ctx, state):  # noqa: N802
        self.states.append((ctx, state))


@pytest.fixture
def api_cluster(tmp_path):
    c = LocalCluster(tmp_path)
    handles = {}
    ctxs = {}
    try:
        for i in c.urls:
            ctxs[i] = SeedContext()
        yield c, handles, ctxs
    finally:
        for h in handles.values():
            easyraft.RAFT_DeleteRaftServer(h)


def start_api_nodes(c, handles, ctxs):
    def run(i):
        easyraft.RAFT_SetContext(ctxs[i])
        h = easyraft.RAFT_NewRaftServer(f"ctx-{i}", json.dumps(c.config(i)))
        assert h is not None, easyraft.RAFT_GetLastError()
        handles[i] = h
    # RAFT_SetContext is process-global, as in the C library: start one by one.
    for i in c.urls:
        run(i)
    wait_for(lambda: len({json.loads(easyraft.RAFT_GetStatus(h))["leader"]
                          for h in handles.values()} - {0}) == 1
             and all(json.loads(easyraft.RAFT_GetStatus(h))["leader"] for h in handles.values()),
             what="a leader")


def test_api_propose_with_seed_callbacks(api_cluster):
    c, handles, ctxs = api_cluster
    start_api_nodes(c, handles, ctxs)
    assert easyraft.RAFT_Propose(handles[1], b"hello world", 5) == easyraft.RAFT_OK
    wait_for(lambda: all(ctx.committed for ctx in ctxs.values()), what="commit everywhere")
    for i, ctx in ctxs.items():
        got_ctx, data, term, index = ctx.committed[0]
        assert (got_ctx, data) == (f"ctx-{i}", b"hello")
        assert term >= 2 and index >= 4
    assert any(state == easyraft.State.LEADER for ctx in ctxs.values() for _, state in ctx.states)
    status = json.loads(easyraft.RAFT_GetStatus(handles[1]))
    for key in ("id", "cluster_id", "state", "term", "leader", "commit", "applied",
                "snapshot_index", "first_index", "last_index"):
        assert key in status
    peers = json.loads(easyraft.RAFT_GetPeersStatus(handles[1]))
    assert sorted(p["id"] for p in peers) == [2, 3]
    assert all(set(p) == {"id", "url", "reachable", "active"} for p in peers)
    assert easyraft.RAFT_Snapshot(handles[1]) == easyraft.RAFT_OK


def test_api_return_codes(api_cluster):
    c, handles, ctxs = api_cluster
    start_api_nodes(c, handles, ctxs)
    h = handles[2]
    assert easyraft.RAFT_Propose(h, b"") == easyraft.RAFT_ERR_INVALID
    assert "empty" in easyraft.RAFT_GetLastError()
    assert easyraft.RAFT_Propose(h, b"abc", 0) == easyraft.RAFT_ERR_INVALID
    assert easyraft.RAFT_Propose(h, b"abc", 4) == easyraft.RAFT_ERR_INVALID
    assert easyraft.RAFT_Propose(h, "text") == easyraft.RAFT_ERR_INVALID
    assert easyraft.RAFT_Propose(h, b"x", None, -1) == easyraft.RAFT_ERR_INVALID
    assert easyraft.RAFT_Propose(h, b"x" * (2 << 20)) == easyraft.RAFT_ERR_TOO_LARGE
    assert easyraft.RAFT_AddServer(h, 0, "http://127.0.0.1:1") == easyraft.RAFT_ERR_INVALID
    assert easyraft.RAFT_AddServer(h, 9, "bogus") == easyraft.RAFT_ERR_INVALID
    assert easyraft.RAFT_ChangeServer(h, 9, "http://x") == easyraft.RAFT_ERR_INVALID
    assert easyraft.RAFT_Propose(object(), b"x") == easyraft.RAFT_ERR_NO_SERVER
    easyraft.RAFT_DeleteRaftServer(h)
    easyraft.RAFT_DeleteRaftServer(h)        # idempotent
    assert easyraft.RAFT_Propose(h, b"x") == easyraft.RAFT_ERR_NO_SERVER
    assert easyraft.RAFT_GetStatus(h) is None
    assert easyraft.RAFT_Propose(handles[1], b"ok") == easyraft.RAFT_OK
    assert easyraft.RAFT_GetLastError() == ""


def test_api_add_and_delete_server(api_cluster):
    c, handles, ctxs = api_cluster
    start_api_nodes(c, handles, ctxs)
    url = f"http://127.0.0.1:{free_port()}"
    assert easyraft.RAFT_AddServer(handles[1], 4, url) == easyraft.RAFT_OK
    assert easyraft.RAFT_DelServer(handles[1], 4) == easyraft.RAFT_OK
    status = json.loads(easyraft.RAFT_GetStatus(handles[1]))
    assert status["voters"] == [1, 2, 3]


def test_api_new_server_with_bad_config_returns_none(tmp_path):
    easyraft.RAFT_SetContext(SeedContext())
    assert easyraft.RAFT_NewRaftServer(None, "{not json") is None
    assert "json" in easyraft.RAFT_GetLastError().lower()
    cfg = LocalCluster(tmp_path).config(1)
    cfg["heartbeat_tick"] = cfg["election_tick"]
    assert easyraft.RAFT_NewRaftServer(None, json.dumps(cfg)) is None
    assert "heartbeat_tick" in easyraft.RAFT_GetLastError()
    with pytest.raises(TypeError):
        easyraft.RAFT_SetContext(object())


def test_api_logger_and_levels(tmp_path):
    path = tmp_path / "raft.log"
    try:
        assert easyraft.RAFT_SetLogger(str(path), 1) == easyraft.RAFT_OK
        assert easyraft.RAFT_SetLogLevel(easyraft.RAFT_LOG_NOTICE) == easyraft.RAFT_OK
        logging.getLogger("easyraft.test").log(25, "notice line")
        logging.getLogger("easyraft.test").info("info line")
        assert easyraft.RAFT_SetLogLevel(99) == easyraft.RAFT_ERR_INVALID
        assert easyraft.RAFT_SetLogger(str(tmp_path / "no" / "dir" / "x.log")) == easyraft.RAFT_ERR_INVALID
    finally:
        easyraft.RAFT_SetLogger(None)
        logging.getLogger("easyraft").propagate = True
        logging.getLogger("easyraft").setLevel(logging.NOTSET)
    text = path.read_text()
    assert "notice line" in text and "info line" not in text


def test_api_version_fills_buffer():
    buf = bytearray(64)
    v = easyraft.RAFT_GetVersion(buf)
    assert v == easyraft.__version__
    assert bytes(buf[: len(v) + 1]) == v.encode() + b"\0"
    small = bytearray(3)
    easyraft.RAFT_GetVersion(small)
    assert small[-1] == 0


def test_aio_raftnodes_on_one_loop(tmp_path):
    c = LocalCluster(tmp_path)

    class SM(easyraft.Callbacks):
        def __init__(self):
            self.data = []

        def on_commit(self, data, term, index):
            self.data.append(data)

    async def main():
        sms = {i: SM() for i in c.urls}
        nodes = [aio.RaftNode(c.config(i), sms[i]) for i in c.urls]
        await asyncio.gather(*(n.start() for n in nodes))
        try:
            term, index = await nodes[0].propose(b"async", timeout=5)
            assert index >= 4
            await nodes[1].read_barrier(timeout=5)
            assert b"async" in sms[2].data
        finally:
            await asyncio.gather(*(n.stop() for n in nodes))
    asyncio.run(main())
