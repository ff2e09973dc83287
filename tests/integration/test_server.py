"""RaftServer end to end: real sockets on 127.0.0.1, real WAL and snapshot files."""
from __future__ import annotations

import os
import threading
import time

import pytest

import easyraft
from easyraft import (
    BusyError,
    ConfigError,
    ProposalDroppedError,
    RaftServer,
    RaftTimeoutError,
    ServerStoppedError,
    State,
    TooLargeError,
    WALLockedError,
)

from .cluster import LocalCluster, Recorder, free_port, wait_for


@pytest.fixture
def cluster(tmp_path):
    c = LocalCluster(tmp_path)
    try:
        yield c
    finally:
        c.close()


def applied_everywhere(c: LocalCluster, n: int) -> bool:
    return all(len(sm.applied) >= n for i, sm in c.sms.items() if i in c.servers)


def assert_same_history(c: LocalCluster) -> None:
    logs = {i: list(c.sms[i].applied) for i in c.servers}
    first = next(iter(logs.values()))
    for i, log in logs.items():
        assert log == first, f"node {i} applied a different history"
        idx = [e[0] for e in log]
        assert idx == sorted(set(idx)), f"node {i} applied out of order or twice"


def test_server_replicates_proposals_from_every_node_in_log_order(cluster):
    cluster.start()
    cluster.leader()
    for k in range(30):
        node = cluster.servers[1 + k % 3]
        node.propose_and_wait(b"v%d" % k, timeout=5)
    wait_for(lambda: applied_everywhere(cluster, 30), what="30 entries applied on all nodes")
    assert_same_history(cluster)
    assert sorted(cluster.sms[1].datas()) == sorted(b"v%d" % k for k in range(30))
    # Every node reports itself once as leader or follower.
    st = {i: s.status() for i, s in cluster.servers.items()}
    assert sorted(x["state"] for x in st.values()) == ["FOLLOWER", "FOLLOWER", "LEADER"]
    for x in st.values():
        for key in ("id", "cluster_id", "state", "term", "leader", "commit", "applied",
                    "snapshot_index", "first_index", "last_index"):
            assert key in x


def test_server_propose_returns_once_accepted_and_commits_exactly_once(cluster):
    cluster.start()
    cluster.leader()
    follower = next(i for i, s in cluster.servers.items() if not s.is_leader)
    for k in range(200):
        cluster.servers[follower].propose(b"p%d" % k, timeout=5)
    term, index = cluster.servers[follower].propose_and_wait(b"last", timeout=5)
    wait_for(lambda: applied_everywhere(cluster, 201), what="201 entries applied")
    datas = cluster.sms[1].datas()
    assert len(datas) == len(set(datas)) == 201
    assert datas[-1] == b"last" and index >= 201 and term >= 2


def test_server_read_barrier_observes_writes_acknowledged_elsewhere(cluster):
    cluster.start()
    cluster.leader()
    cluster.servers[1].propose_and_wait(b"x", timeout=5)
    for i, s in cluster.servers.items():
        index = s.read_barrier(timeout=5)
        assert index >= 1
        assert b"x" in cluster.sms[i].datas()


def test_server_restart_rebuilds_state_from_snapshot_and_log(tmp_path):
    with LocalCluster(tmp_path, snap_count=20, snapshot_entries=5) as c:
        c.start()
        c.leader()
        for k in range(55):
            c.servers[1].propose_and_wait(b"e%d" % k, timeout=5)
        wait_for(lambda: applied_everywhere(c, 55), what="55 applied")
        before = {i: c.sms[i].datas() for i in c.servers}
        snaps = {i: s.status()["snapshot_index"] for i, s in c.servers.items()}
        assert all(v > 0 for v in snaps.values()), snaps
        c.close()
        c.start()
        for i in c.servers:
            sm = c.sms[i]
            assert sm.restored, f"node {i} did not restore its snapshot"
            assert sm.datas() == before[i], f"node {i} rebuilt a different state"
        c.leader()
        c.servers[2].propose_and_wait(b"after", timeout=5)
        wait_for(lambda: applied_everywhere(c, 56), what="write after restart")


def test_server_second_server_on_same_waldir_is_refused(cluster):
    cluster.start(1, 2, 3)
    with pytest.raises(WALLockedError):
        RaftServer(cluster.config(1), Recorder())


def test_server_join_catches_up_by_snapshot_after_compaction(tmp_path):
    with LocalCluster(tmp_path, snap_count=10, snapshot_entries=2) as c:
        c.start()
        c.leader()
        for k in range(40):
            c.servers[1].propose_and_wait(b"j%d" % k, timeout=5)
        url4 = f"http://127.0.0.1:{free_port()}"
        c.servers[2].add_server(4, url4, timeout=10)
        urls = dict(c.urls)
        urls[4] = url4
        c.start(4, join=True, urls=urls)
        c.servers[3].propose_and_wait(b"after-join", timeout=5)
        wait_for(lambda: b"after-join" in c.sms[4].datas(), what="node 4 to apply")
        assert c.sms[4].restored, "node 4 should have been caught up by a snapshot"
        assert c.sms[4].datas() == c.sms[1].datas()
        assert c.servers[4].status()["voters"] == [1, 2, 3, 4]


def test_server_removed_node_stops_itself_and_membership_survives_restart(tmp_path):
    with LocalCluster(tmp_path) as c:
        c.start()
        leader = c.leader()
        victim = next(i for i in c.servers if i != leader)
        c.servers[leader].remove_server(victim, timeout=10)
        wait_for(lambda: c.servers[victim].stopped, what="removed node to stop")
        with pytest.raises(ServerStoppedError):
            c.servers[victim].propose(b"x", timeout=1)
        c.stop(victim)
        rest = [i for i in c.servers]
        c.servers[rest[0]].propose_and_wait(b"two-node", timeout=5)
        # Restart the survivors from their original config files (which
        # still list the removed node): membership comes from the log.
        for i in rest:
            c.stop(i)
        c.start(*rest)
        c.leader()
        for i in rest:
            assert c.servers[i].status()["voters"] == sorted(rest)


def test_server_change_server_moves_a_member_to_a_new_url(tmp_path):
    with LocalCluster(tmp_path) as c:
        c.start()
        leader = c.leader()
        mover = next(i for i in c.servers if i != leader)
        c.stop(mover)
        new_url = f"http://127.0.0.1:{free_port()}"
        c.servers[leader].change_server(mover, new_url, timeout=10)
        urls = dict(c.urls)
        urls[mover] = new_url
        c.start(mover, urls=urls)
        c.servers[leader].propose_and_wait(b"moved", timeout=5)
        wait_for(lambda: b"moved" in c.sms[mover].datas(), what="moved node to apply")
        peers = {p["id"]: p["url"] for p in c.servers[leader].peers_status()}
        assert peers[mover] == new_url


def test_server_one_membership_change_at_a_time(cluster):
    cluster.start()
    leader = cluster.leader()
    s = cluster.servers[leader]
    # With both followers gone the first change cannot commit, so it stays
    # pending for its whole timeout: the second one must be refused at once.
    for i in [i for i in cluster.servers if i != leader]:
        cluster.stop(i)
    outcome = []

    def first_add():
        try:
            s.add_server(9, f"http://127.0.0.1:{free_port()}", timeout=2)
        except Exception as e:  # noqa: BLE001 - the test asserts on whatever the change got
            outcome.append(e)
    t = threading.Thread(target=first_add)
    t.start()
    try:
        wait_for(lambda: s.node._pending_cc is not None, 5, "the first change to be pending")
        with pytest.raises(BusyError):
            s.add_server(10, f"http://127.0.0.1:{free_port()}", timeout=2)
    finally:
        t.join()
    assert len(outcome) == 1 and not isinstance(outcome[0], BusyError), outcome


def test_server_transfer_leadership(cluster):
    cluster.start()
    leader = cluster.leader()
    target = next(i for i in cluster.servers if i != leader)
    cluster.servers[leader].transfer_leadership(target, timeout=5)
    assert cluster.leader() == target
    cluster.servers[leader].propose_and_wait(b"after-transfer", timeout=5)


def test_server_manual_snapshot(cluster):
    cluster.start()
    cluster.leader()
    for k in range(10):
        cluster.servers[1].propose_and_wait(b"s%d" % k, timeout=5)
    index = cluster.servers[1].snapshot(timeout=5)
    assert index >= 10
    assert cluster.servers[1].status()["snapshot_index"] == index


def test_server_on_commit_errors_are_counted_and_applying_continues(tmp_path):
    with LocalCluster(tmp_path) as c:
        rec = Recorder()

        def hook(data, term, index):
            if data == b"boom":
                raise RuntimeError("user bug")
            if data == b"nonzero":
                return 3
            return None
        rec.commit_hook = hook
        c.start(1, sm=rec)
        c.start(2, 3)
        c.leader()
        for d in (b"a", b"boom", b"nonzero", b"b"):
            c.servers[2].propose_and_wait(d, timeout=5)
        wait_for(lambda: b"b" in c.sms[1].datas(), what="applying to go on")
        assert c.servers[1].status()["commit_errors"] == 2


def test_server_recover_failure_is_fatal_for_that_server_only(tmp_path):
    with LocalCluster(tmp_path, snap_count=5, snapshot_entries=1) as c:
        c.start()
        c.leader()
        for k in range(12):
            c.servers[1].propose_and_wait(b"r%d" % k, timeout=5)
        wait_for(lambda: all(s.status()["snapshot_index"] > 0 for s in c.servers.values()),
                 what="snapshots everywhere")
        c.stop(3)
        bad = Recorder()
        bad.fail_recover = True
        c.start(3, sm=bad)
        wait_for(lambda: c.servers[3].status()["failed"] is not None, what="node 3 to fail")
        with pytest.raises(ServerStoppedError):
            c.servers[3].propose(b"x", timeout=1)
        assert easyraft.RAFT_Propose(c.servers[3], b"x") == easyraft.RAFT_ERR_STOPPED
        # Node 3 may have been the leader: wait until 1 and 2 agree on a new one.
        c.leader(among=[1, 2])
        c.servers[1].propose_and_wait(b"others-go-on", timeout=5)


def test_server_slow_on_commit_does_not_cost_leadership(tmp_path):
    with LocalCluster(tmp_path) as c:
        c.start()
        leader = c.leader()
        term = c.servers[leader].status()["term"]
        c.sms[leader].commit_hook = (
            lambda data, term, index: time.sleep(0.5) if data == b"slow" else None)
        c.servers[leader].propose(b"slow", timeout=5)
        # 0.5 s is 25 election ticks of 20 ms: heartbeats must keep flowing.
        time.sleep(1.0)
        st = c.servers[leader].status()
        assert st["state"] == "LEADER" and st["term"] == term


class _LargeState(Recorder):
    """A Recorder whose snapshot carries ~48 MB of incompressible padding
    (a comment to ast.literal_eval, so recovery still works)."""

    def get_snapshot(self) -> bytes:
        return super().get_snapshot() + b"\n#" + os.urandom(24 << 20).hex().encode()


def _start_large_state_cluster(c: LocalCluster, values: list[bytes]) -> int:
    """Start every node with a _LargeState, commit `values`; return the leader."""
    for i in (1, 2, 3):
        c.start(i, sm=_LargeState())
    leader = c.leader()
    for v in values:
        c.servers[leader].propose_and_wait(v, timeout=5)
    return leader


def _restart_and_expect(c: LocalCluster, i: int, values: list[bytes]) -> None:
    c.start(i, sm=_LargeState())
    wait_for(lambda: [d for _, _, d in c.sms[i].applied][-len(values):] == values,
             what=f"node {i} restarted with its state")


def test_server_large_snapshot_does_not_cost_leadership(tmp_path):
    # Writing the file (envelope, lz4, CRC, fsync) happens off the loop:
    # on it, ~48 MB took long enough here to miss heartbeats.
    values = [b"v%d" % k for k in range(5)]
    with LocalCluster(tmp_path) as c:
        leader = _start_large_state_cluster(c, values)
        term = c.servers[leader].status()["term"]
        index = c.servers[leader].snapshot(timeout=60)
        st = c.servers[leader].status()
        assert st["state"] == "LEADER" and st["term"] == term
        assert st["snapshot_index"] == index >= 5
        snapdir = c.config(leader)["snapdir"]
        assert max(os.path.getsize(os.path.join(snapdir, n)) for n in os.listdir(snapdir)) > 24e6
        c.stop(leader)
        _restart_and_expect(c, leader, values)     # recovers from the large snapshot


def test_server_stop_during_a_snapshot_write_leaves_a_recoverable_node(tmp_path):
    values = [b"w%d" % k for k in range(5)]
    with LocalCluster(tmp_path) as c:
        leader = _start_large_state_cluster(c, values)
        follower = next(i for i in c.servers if i != leader)
        outcome: list[object] = []

        def take() -> None:
            try:
                outcome.append(c.servers[follower].snapshot(timeout=30))
            except Exception as e:  # noqa: BLE001 - recorded, and asserted on below
                outcome.append(e)
        t = threading.Thread(target=take)
        t.start()
        node = c.servers[follower].node
        wait_for(lambda: node._snap_write is not None or outcome, 30, "the file being written")
        writing = node._snap_write is not None
        c.stop(follower)                    # waits for the write, then closes the WAL
        t.join(30)
        assert writing and len(outcome) == 1
        # The write finished before the WAL closed: its marker went in.
        assert isinstance(outcome[0], int), outcome
        _restart_and_expect(c, follower, values)


def test_server_state_changes_reach_callbacks(cluster):
    cluster.start()
    leader = cluster.leader()
    wait_for(lambda: State.LEADER in cluster.sms[leader].states, what="on_state_change(LEADER)")


def test_server_bad_arguments_raise_typed_errors(cluster):
    cluster.start()
    cluster.leader()
    s = cluster.servers[1]
    with pytest.raises(ValueError):
        s.propose(b"", timeout=1)
    with pytest.raises(TypeError):
        s.propose("text", timeout=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        s.propose(b"abc", timeout=1, size=4)
    with pytest.raises(TooLargeError):
        s.propose(b"x" * (1024 * 1024 + 1), timeout=1)
    with pytest.raises(ValueError):
        s.add_server(0, "http://127.0.0.1:1")
    with pytest.raises(ConfigError):
        s.add_server(7, "not a url")


def test_server_without_quorum_drops_proposals_in_time(tmp_path):
    with LocalCluster(tmp_path) as c:
        c.start(1)      # alone: never elected
        with pytest.raises(ProposalDroppedError):
            c.servers[1].propose(b"x", timeout=0.3)


def test_server_waits_time_out_without_a_quorum(tmp_path):
    # check_quorum off: the lone leader keeps accepting what it cannot commit.
    with LocalCluster(tmp_path, check_quorum=False) as c:
        c.start()
        lead = c.leader()
        for i in list(c.servers):
            if i != lead:
                c.stop(i)
        s = c.servers[lead]
        t0 = time.monotonic()
        with pytest.raises(RaftTimeoutError, match="outcome is unknown"):
            s.propose_and_wait(b"x", timeout=0.3)
        with pytest.raises(RaftTimeoutError, match="read"):
            s.read_barrier(timeout=0.2)
        assert time.monotonic() - t0 < 5
        assert s.status()["state"] == "LEADER"     # still serving, nothing left behind


def test_server_purges_old_wal_segments_and_snapshots(tmp_path, monkeypatch):
    import os

    import easyraft.storage.wal as walmod
    monkeypatch.setattr(walmod, "SEGMENT_SIZE", 64 * 1024)     # many segments, quickly
    with LocalCluster(tmp_path, snap_count=50, snapshot_entries=10, max_wal_files=2,
                      max_snap_files=2, purge_file_interval=0.05) as c:
        c.start()
        lead = c.leader()
        for k in range(400):
            c.servers[lead].propose_and_wait(b"p%03d" % k + b"." * 2000, timeout=5)

        def files(i: int, kind: str) -> list[str]:
            d = c.config(i)["waldir" if kind == "wal" else "snapdir"]
            return [n for n in os.listdir(d) if n.endswith("." + kind)]
        # Snapshots every 50 entries and ~2 KB per entry fill a dozen 64 KiB
        # segments; purging keeps the newest few of each.
        wait_for(lambda: all(len(files(i, "wal")) <= 3 and len(files(i, "snap")) <= 2
                             for i in c.servers), what="old segments and snapshots purged")
        newest = max(walmod.parse_segment_name(n)[0] for n in files(lead, "wal"))
        assert newest >= 8, newest          # that many segments were written
        c.stop(lead)
        c.start(lead)                       # recovers from what was kept
        wait_for(lambda: applied_everywhere(c, 400), what="restarted node caught up")
        assert_same_history(c)


def test_server_two_clusters_share_one_listening_url(tmp_path):
    a = LocalCluster(tmp_path, cluster_id=1)
    b = LocalCluster(tmp_path, cluster_id=2)
    b.urls = dict(a.urls)       # same host:port for both clusters
    try:
        a.start()
        b.start()
        a.leader()
        b.leader()
        a.servers[1].propose_and_wait(b"for-a", timeout=5)
        b.servers[1].propose_and_wait(b"for-b", timeout=5)
        wait_for(lambda: applied_everywhere(a, 1) and applied_everywhere(b, 1), what="both")
        assert all(sm.datas() == [b"for-a"] for sm in a.sms.values())
        assert all(sm.datas() == [b"for-b"] for sm in b.sms.values())
    finally:
        a.close()
        b.close()


def test_server_refuses_to_start_on_a_corrupt_wal(tmp_path):
    with LocalCluster(tmp_path) as c:
        c.start()
        c.leader()
        for k in range(20):
            c.servers[1].propose_and_wait(b"w%d" % k, timeout=5)
        cfg = c.config(2)
        c.stop(2)
        import glob
        seg = sorted(glob.glob(f"{cfg['waldir']}/*.wal"))[0]
        with open(seg, "r+b") as f:
            f.seek(200)              # inside an early record, far from the tail
            b = f.read(1)
            f.seek(200)
            f.write(bytes([b[0] ^ 0xFF]))
        with pytest.raises(easyraft.CorruptWALError) as ei:
            RaftServer(cfg, Recorder())
        assert ei.value.file.endswith(".wal") and ei.value.offset <= 200
        easyraft.RAFT_SetContext(Recorder())
        assert easyraft.RAFT_NewRaftServer(None, cfg) is None
        assert "corrupt" in easyraft.RAFT_GetLastError()
        # Node 2 may have led: the other two elect a leader and go on.
        c.leader(among=[1, 3])
        c.servers[1].propose_and_wait(b"still-fine", timeout=5)
