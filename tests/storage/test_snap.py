"""Snapshot files: round trip, CRC, corrupt newer file falls back, purge."""
import logging
import os

import pytest
from hypothesis import given, settings, strategies as st

from easyraft._core.types import ConfState, Snapshot, SnapshotMetadata
from easyraft.errors import CorruptSnapshotError
from easyraft.storage.snap import Snapshotter, decode_snapshot_file, encode_snapshot_file, snap_name

PEERS = {1: "http://127.0.0.1:9001", 2: "http://127.0.0.1:9002", 7: "http://10.0.0.7:9007"}


def snap(index, term=1, data=None, voters=(1, 2, 7)):
    return Snapshot(data=data if data is not None else f"state@{index}".encode() * 100,
                    metadata=SnapshotMetadata(index=index, term=term,
                                              conf_state=ConfState(voters=voters, learners=(9,))))


def test_snap_round_trip_with_membership(tmp_path):
    s = Snapshotter(str(tmp_path / "snap"))
    name = s.save(snap(100, 3), PEERS)
    assert name == snap_name(3, 100) == "0000000000000003-0000000000000064.snap"
    got, peers = s.load_newest_available()
    assert got == snap(100, 3)
    assert peers == PEERS
    assert not [n for n in os.listdir(s.dirpath) if n.endswith(".tmp")]


def test_snap_file_is_compressed_and_checked(tmp_path):
    raw = encode_snapshot_file(snap(5, data=b"a" * 100_000), {})
    assert len(raw) < 2000
    for pos in (0, 9, 20, len(raw) // 2, len(raw) - 1):
        bad = bytearray(raw)
        bad[pos] ^= 1
        with pytest.raises(CorruptSnapshotError, match=r"^snap: "):
            decode_snapshot_file(bytes(bad))
    with pytest.raises(CorruptSnapshotError):
        decode_snapshot_file(raw[:-3])


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=3000))
def test_snap_random_bytes_never_crash(data):
    try:
        decode_snapshot_file(data)
    except CorruptSnapshotError:
        pass


def test_snap_empty_snapshot_is_not_saved(tmp_path):
    s = Snapshotter(str(tmp_path))
    assert s.save(Snapshot(), PEERS) is None
    assert s.load_newest_available() is None


def test_snap_corrupt_newer_file_falls_back_with_warning(tmp_path, caplog):
    s = Snapshotter(str(tmp_path))
    s.save(snap(100), PEERS)
    newest = s.save(snap(200), PEERS)
    path = os.path.join(s.dirpath, newest)
    with open(path, "r+b") as f:
        f.seek(30)
        f.write(b"\xff\xff\xff")
    with caplog.at_level(logging.WARNING, logger="easyraft"):
        got, _ = s.load_newest_available()
    assert got.metadata.index == 100
    assert any(newest in r.getMessage() and "crc" in r.getMessage() for r in caplog.records)
    assert os.path.exists(path + ".broken") and not os.path.exists(path)


def test_snap_file_not_matching_its_name_is_corrupt(tmp_path):
    s = Snapshotter(str(tmp_path))
    name = s.save(snap(100), PEERS)
    os.rename(os.path.join(s.dirpath, name), os.path.join(s.dirpath, snap_name(1, 300)))
    with pytest.raises(CorruptSnapshotError, match="name"):
        s.load(snap_name(1, 300))


def test_snap_load_restricted_to_valid_markers(tmp_path):
    s = Snapshotter(str(tmp_path))
    s.save(snap(100), PEERS)
    s.save(snap(200), PEERS)             # orphan: crash before its WAL marker
    got, _ = s.load_newest_available(valid=[(0, 0), (1, 100)])
    assert got.metadata.index == 100
    assert s.load_newest_available(valid=[(0, 0)]) is None


def test_snap_purge_keeps_newest_and_needed(tmp_path):
    s = Snapshotter(str(tmp_path))
    for i in range(1, 6):
        s.save(snap(i * 100), PEERS)
    open(os.path.join(s.dirpath, snap_name(1, 999) + ".tmp"), "wb").close()
    assert s.purge(0) == []
    assert len(s.names()) == 5 and not any(n.endswith(".tmp") for n in os.listdir(s.dirpath))
    # Newest two stay, plus the newest one the WAL has a marker for.
    removed = s.purge(2, valid=[(1, 100), (1, 200)])
    assert removed == [snap_name(1, 100), snap_name(1, 300)]
    assert s.names() == [snap_name(1, 200), snap_name(1, 400), snap_name(1, 500)]
    assert s.purge(1) == [snap_name(1, 200), snap_name(1, 400)]
    assert s.names() == [snap_name(1, 500)]
    s.save(snap(600), PEERS)
    assert s.purge(1, unlink=False) == [snap_name(1, 500)]     # left for the caller
    assert s.names() == [snap_name(1, 500), snap_name(1, 600)]
