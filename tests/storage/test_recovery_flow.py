"""The restart sequence a Node runs (etcd raftexample: loadSnapshot, openWAL,
ReadAll), across snapshots, purges and an orphaned snapshot file."""
from easyraft._core.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
from easyraft.storage import WAL, Snapshotter
from easyraft.storage.wal import valid_snapshot_entries

SEG = 16 * 1024
PEERS = {1: "http://127.0.0.1:9001", 2: "http://127.0.0.1:9002", 4: "http://127.0.0.1:9004"}


def ents(lo, hi):
    return [Entry(term=1, index=i, data=b"v%d" % i * 20) for i in range(lo, hi)]


def restart(waldir, snapdir):
    snapper = Snapshotter(snapdir)
    loaded = snapper.load_newest_available(valid_snapshot_entries(waldir))
    index = term = 0
    if loaded is not None:
        index, term = loaded[0].metadata.index, loaded[0].metadata.term
    w = WAL.open(waldir, index, term, segment_size=SEG)
    _meta, hs, es = w.read_all()
    return loaded, w, hs, es


def test_recovery_flow_snapshot_purge_restart(tmp_path):
    waldir, snapdir = str(tmp_path / "wal"), str(tmp_path / "snap")
    w = WAL.create(waldir, b"node-1", segment_size=SEG)
    snapper = Snapshotter(snapdir)
    for lo in range(1, 801, 20):
        w.save(HardState(term=1, vote=1, commit=lo + 19), ents(lo, lo + 20), must_sync=True)
        if (lo + 19) % 200 == 0 and lo + 19 < 800:
            # raftexample's order: snapshot file, then the WAL marker, then release.
            snap = Snapshot(data=b"state-%d" % (lo + 19), metadata=SnapshotMetadata(
                index=lo + 19, term=1, conf_state=ConfState(voters=(1, 2, 4))))
            snapper.save(snap, PEERS)
            w.save_snapshot(lo + 19, 1)
            w.release_to(lo + 19)
            w.purge(2)
            snapper.purge(2)
    # A crash after writing a snapshot file but before its WAL marker.
    snapper.save(Snapshot(data=b"orphan", metadata=SnapshotMetadata(
        index=800, term=1, conf_state=ConfState(voters=(1, 2, 4)))), PEERS)
    w.close()

    loaded, w, hs, es = restart(waldir, snapdir)
    try:
        snap, peers = loaded
        assert snap.metadata.index == 600 and snap.data == b"state-600"
        assert peers == PEERS and list(snap.metadata.conf_state.voters) == [1, 2, 4]
        assert es == ents(601, 801) and hs.commit == 800
        w.save(HardState(term=2, vote=2, commit=805),
               [Entry(term=2, index=i) for i in range(801, 806)], True)
    finally:
        w.close()
    loaded, w, hs, es = restart(waldir, snapdir)
    w.close()
    assert [e.index for e in es] == list(range(601, 806)) and hs.term == 2
