"""WAL: round trips, segment rolling, recovery rules, locking, purge."""
import logging
import os
import shutil
import subprocess
import sys
import time

import pytest

from easyraft._core.types import Entry, HardState
from easyraft._core.walrec import frame_size
from easyraft.errors import CorruptWALError, WALLockedError
from easyraft.storage import fileutil, wal as walmod
from easyraft.storage.wal import WAL, WALFailedError, parse_segment_name

SEG = 16 * 1024
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ents(lo, hi, term=1, size=100):
    """Entries [lo, hi) whose data is derived from (term, index)."""
    return [Entry(term=term, index=i, data=bytes([(i * 7 + term) & 0xFF]) * size)
            for i in range(lo, hi)]


def tail_path(d):
    return os.path.join(d, walmod.list_segments(d)[-1].name)


def write_log(d, n, batch=10, seg=SEG, size=100, meta=b"meta"):
    w = WAL.create(d, meta, segment_size=seg)
    for lo in range(1, n + 1, batch):
        hi = min(lo + batch, n + 1)
        w.save(HardState(term=1, vote=1, commit=hi - 1), ents(lo, hi, size=size), must_sync=True)
    w.close()


def _save_batches(w, lo, hi, batch=10):
    for i in range(lo, hi, batch):
        w.save(HardState(term=1, vote=1, commit=min(i + batch, hi) - 1),
               ents(i, min(i + batch, hi)), True)


def reopen(d, snap_index=0, snap_term=0, seg=SEG):
    w = WAL.open(d, snap_index, snap_term, segment_size=seg)
    meta, hs, es = w.read_all()
    return w, meta, hs, es


def test_wal_round_trip(tmp_path):
    d = str(tmp_path / "wal")
    w = WAL.create(d, b"node-1", segment_size=SEG)
    assert WAL.exists(d)
    w.save(HardState(term=1, vote=1, commit=0), [], must_sync=True)
    w.save(None, ents(1, 4), must_sync=True)
    w.save(HardState(term=2, vote=3, commit=3), ents(4, 6, term=2), must_sync=False)
    w.close()
    w, meta, hs, es = reopen(d)
    with w:
        assert meta == b"node-1"
        assert hs == HardState(term=2, vote=3, commit=3)
        assert es == ents(1, 4) + ents(4, 6, term=2)
        # Appends continue at the end of the log.
        w.save(None, ents(6, 8, term=2), must_sync=True)
    w, _, _, es = reopen(d)
    w.close()
    assert [e.index for e in es] == list(range(1, 8))


def test_wal_create_refuses_existing_and_open_needs_one(tmp_path):
    d = str(tmp_path / "wal")
    WAL.create(d, b"m", segment_size=SEG).close()
    with pytest.raises(FileExistsError):
        WAL.create(d, b"m", segment_size=SEG)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError):
        WAL.open(str(empty))
    assert not WAL.exists(str(tmp_path / "nowhere"))


def test_wal_save_before_read_all_is_refused(tmp_path):
    d = str(tmp_path / "wal")
    WAL.create(d, b"m", segment_size=SEG).close()
    w = WAL.open(d, segment_size=SEG)
    with pytest.raises(RuntimeError, match="read_all"):
        w.save(None, ents(1, 2), True)
    w.close()


def test_wal_overwritten_entries_are_replaced_on_replay(tmp_path):
    d = str(tmp_path / "wal")
    w = WAL.create(d, b"m", segment_size=SEG)
    w.save(HardState(term=1, vote=1, commit=2), ents(1, 8, term=1), True)
    # A new leader in term 2 overwrote 4..7 with 4..5 (Raft thesis §3.5).
    w.save(HardState(term=2, vote=2, commit=2), ents(4, 6, term=2), True)
    w.close()
    w, _, _, es = reopen(d)
    w.close()
    assert es == ents(1, 4, term=1) + ents(4, 6, term=2)


def test_wal_segments_roll_and_are_preallocated(tmp_path):
    d = str(tmp_path / "wal")
    write_log(d, 500)
    segs = walmod.list_segments(d)
    assert len(segs) > 3
    assert [s.seq for s in segs] == list(range(len(segs)))
    assert segs[0].index == 0
    # Each later segment is named after the entry that follows the cut.
    for s in segs[1:]:
        assert 1 < s.index <= 500
    # Full segments are cut to their last record; the tail is preallocated.
    assert os.path.getsize(tail_path(d)) == SEG
    for s in segs[:-1]:
        assert os.path.getsize(os.path.join(d, s.name)) % 8 == 0
    w, meta, hs, es = reopen(d)
    w.close()
    assert es == ents(1, 501) and hs.commit == 500 and meta == b"meta"


def test_wal_open_at_snapshot_returns_entries_after_it(tmp_path):
    d = str(tmp_path / "wal")
    w = WAL.create(d, b"m", segment_size=SEG)
    w.save(HardState(term=1, vote=1, commit=300), ents(1, 301), True)
    w.save_snapshot(250, 1)
    w.save(None, ents(301, 311), True)
    w.close()
    w, _, _hs, es = reopen(d, 250, 1)
    w.close()
    assert es == ents(251, 311)
    with pytest.raises(CorruptWALError, match="term 1, expected 2"):
        reopen(d, 250, 2)
    with pytest.raises(CorruptWALError, match="not found"):
        reopen(d, 260, 1)


def test_wal_group_commit_one_fdatasync_per_synced_save(tmp_path, monkeypatch):
    d = str(tmp_path / "wal")
    w = WAL.create(d, b"m", segment_size=1 << 20)
    calls = []
    real = fileutil.fdatasync
    # Count syncs of the tail only (the preallocation thread syncs its own file).
    monkeypatch.setattr(fileutil, "fdatasync",
                        lambda fd: (calls.append(fd) if fd == w._fd else None, real(fd)))
    w.save(HardState(term=1), ents(1, 65), must_sync=True)
    assert len(calls) == 1
    w.save(None, ents(65, 70), must_sync=False)
    w.save(None, ents(70, 80), must_sync=False)
    assert len(calls) == 1
    w.save(HardState(term=1, commit=79), [], must_sync=True)
    assert len(calls) == 2
    w.save(None, [], must_sync=True)       # nothing to write: no sync either
    assert len(calls) == 2
    w.close()


def test_wal_failed_sync_makes_wal_unusable(tmp_path, monkeypatch):
    d = str(tmp_path / "wal")
    w = WAL.create(d, b"m", segment_size=SEG)
    real = fileutil.fdatasync

    def broken(fd):
        if fd != w._fd:
            return real(fd)
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(fileutil, "fdatasync", broken)
    with pytest.raises(OSError):
        w.save(None, ents(1, 2), must_sync=True)
    monkeypatch.undo()
    # The kernel may have dropped the pages: a retried sync must not pass.
    with pytest.raises(WALFailedError):
        w.save(None, ents(2, 3), must_sync=True)
    w.close()


# --- recovery: torn tails -----------------------------------------------------

def _log_with_last_record(tmp_path, size=300):
    """A log of entries 1..20 in one segment, then entry 21 alone; returns
    (dir, tail file, start and end offset of entry 21's record)."""
    d = str(tmp_path / "wal")
    w = WAL.create(d, b"m", segment_size=SEG)
    w.save(HardState(term=1, vote=1, commit=20), ents(1, 21, size=size), True)
    start = w._offset
    w.save(None, ents(21, 22, size=size), True)
    end = w._offset
    w.close()
    assert end - start == frame_size(21 + size)
    return d, tail_path(d), start, end


def test_wal_truncated_last_record_at_every_offset(tmp_path, caplog):
    d, tail, start, end = _log_with_last_record(tmp_path)
    pristine = str(tmp_path / "pristine")
    shutil.copytree(d, pristine)
    for cut in range(start, end + 1):
        shutil.rmtree(d)
        shutil.copytree(pristine, d)
        os.truncate(tail, cut)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="easyraft"):
            w, _, hs, es = reopen(d)
        want = 21 if cut == end else 20
        assert [e.index for e in es] == list(range(1, want + 1)), cut
        assert hs.commit == 20
        if start < cut < end:
            assert any(tail in r.getMessage() and f"offset {start}" in r.getMessage()
                       for r in caplog.records), cut
        else:
            assert not caplog.records, cut
        # The log continues cleanly after the repair.
        w.save(None, ents(want + 1, want + 3), True)
        w.close()
        w, _, _, es = reopen(d)
        w.close()
        assert [e.index for e in es] == list(range(1, want + 3)), cut


def test_wal_unwritten_sectors_in_last_write_are_torn(tmp_path, caplog):
    # Power loss in the middle of the last (unsynced) write: some of its
    # sectors never reached the disk and read back as the preallocated zeros.
    d, tail, start, _end = _log_with_last_record(tmp_path, size=3000)
    with open(tail, "r+b") as f:
        first_sector = (start // 512 + 1) * 512
        f.seek(first_sector)
        f.write(bytes(512))
    with caplog.at_level(logging.WARNING, logger="easyraft.wal"):
        w, _, _, es = reopen(d)
    w.close()
    assert [e.index for e in es] == list(range(1, 21))
    assert any(f"offset {start}" in r.getMessage() for r in caplog.records)


def test_wal_zeroed_record_in_tail_truncates_like_etcd(tmp_path):
    # etcd's TestOpenOnTornWrite: zero entry 20 of 40; the log ends at 19.
    d = str(tmp_path / "wal")
    w = WAL.create(d, b"m", segment_size=SEG)
    offsets = []
    for i in range(1, 41):
        offsets.append(w._offset)
        w.save(None, ents(i, i + 1, size=40), True)
    w.close()
    with open(tail_path(d), "r+b") as f:
        f.seek(offsets[19])
        f.write(bytes(offsets[20] - offsets[19]))
    w, _, _, es = reopen(d)
    assert [e.index for e in es] == list(range(1, 20))
    w.save(None, ents(20, 31, term=2, size=40), True)
    w.close()
    w, _, _, es = reopen(d)
    w.close()
    assert es == ents(1, 20, size=40) + ents(20, 31, term=2, size=40)


# --- recovery: corruption -------------------------------------------------------

def _flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x40]))


def test_wal_corruption_in_middle_segment_names_file_and_offset(tmp_path):
    d = str(tmp_path / "wal")
    write_log(d, 400)
    segs = walmod.list_segments(d)
    victim = os.path.join(d, segs[1].name)
    # Find the start of the fifth record of segment 1 by walking its frames.
    records = [r for r in walmod.dump(d) if r.file == victim]
    target = records[5]
    _flip(victim, target.offset + 40)
    with pytest.raises(CorruptWALError) as ei:
        reopen(d)
    assert ei.value.file == victim
    assert ei.value.offset == target.offset
    assert "crc" in ei.value.reason
    # Nothing was changed on disk: still corrupt on the next try.
    with pytest.raises(CorruptWALError):
        reopen(d)


def test_wal_corruption_in_tail_with_records_after_is_not_truncated(tmp_path):
    d = str(tmp_path / "wal")
    write_log(d, 30, batch=1, seg=1 << 20)
    tail = tail_path(d)
    before = open(tail, "rb").read()
    records = list(walmod.dump(d))
    target = [r for r in records if r.type == "entry"][10]
    _flip(tail, target.offset + 30)
    with pytest.raises(CorruptWALError) as ei:
        reopen(d, seg=1 << 20)
    assert (ei.value.file, ei.value.offset) == (tail, target.offset)
    after = open(tail, "rb").read()
    assert sum(a != b for a, b in zip(before, after, strict=True)) == 1


def test_wal_corrupt_last_synced_record_is_detected(tmp_path):
    # A bit flip (no zero sector) in the very last record: acknowledged
    # data, so it must not be dropped as if it were a torn write.
    d, tail, start, _end = _log_with_last_record(tmp_path)
    _flip(tail, start + 100)
    with pytest.raises(CorruptWALError) as ei:
        reopen(d)
    assert (ei.value.file, ei.value.offset) == (tail, start)


def test_wal_damaged_length_field_mid_log_is_corrupt(tmp_path):
    d = str(tmp_path / "wal")
    write_log(d, 30, batch=1, seg=1 << 20)
    tail = tail_path(d)
    target = [r for r in walmod.dump(d) if r.type == "entry"][5]
    with open(tail, "r+b") as f:
        f.seek(target.offset + 7)    # high byte of the u32 length: runs past the end
        f.write(b"\x7f")
    with pytest.raises(CorruptWALError) as ei:
        reopen(d, seg=1 << 20)
    assert ei.value.offset == target.offset


def test_wal_missing_segment_is_corrupt(tmp_path):
    d = str(tmp_path / "wal")
    write_log(d, 400)
    segs = walmod.list_segments(d)
    os.remove(os.path.join(d, segs[2].name))
    with pytest.raises(CorruptWALError) as ei:
        reopen(d)
    assert ei.value.file == os.path.join(d, segs[3].name)
    assert "missing segment" in ei.value.reason


def test_wal_foreign_segment_is_caught_by_chain(tmp_path):
    # A segment from another log of the same shape, under the right name,
    # decodes fine on its own; the chain in its CRC record gives it away.
    d, other = str(tmp_path / "a"), str(tmp_path / "b")
    write_log(d, 300)
    write_log(other, 300, meta=b"atem")
    name = walmod.list_segments(d)[2].name
    assert walmod.list_segments(other)[2].name == name
    shutil.copy(os.path.join(other, name), os.path.join(d, name))
    with pytest.raises(CorruptWALError) as ei:
        reopen(d)
    assert (ei.value.file, ei.value.offset) == (os.path.join(d, name), 0)
    assert "chain" in ei.value.reason


def test_wal_segment_preparation_runs_ahead_and_is_cleaned_up(tmp_path):
    d = str(tmp_path / "wal")
    w = WAL.create(d, b"m", segment_size=SEG)
    w._pipeline._next.result()             # the next segment is ready before any cut
    assert any(n.endswith(".tmp") and os.path.getsize(os.path.join(d, n)) == SEG
               for n in os.listdir(d))
    _save_batches(w, 1, 401)
    assert len(w.segments) > 3
    w.close()
    assert not [n for n in os.listdir(d) if n.endswith(".tmp")]


def test_wal_stale_tmp_segment_is_removed(tmp_path):
    d = str(tmp_path / "wal")
    write_log(d, 20)
    stale = os.path.join(d, walmod.segment_name(9, 99) + ".tmp")
    open(stale, "wb").write(b"junk")
    w, _, _, es = reopen(d)
    w.close()
    assert not os.path.exists(stale) and len(es) == 20


def test_wal_crash_during_cut_leaves_exact_size_tail(tmp_path):
    # The full segment was truncated and synced, the next one never renamed.
    d = str(tmp_path / "wal")
    write_log(d, 10, seg=SEG)
    w, _, _, es = reopen(d)
    off = w._offset
    w.close()
    os.truncate(tail_path(d), off)
    w, _, _, es = reopen(d)
    assert os.path.getsize(tail_path(d)) == SEG    # preallocated again
    w.save(None, ents(11, 12), True)
    w.close()
    w, _, _, es = reopen(d)
    w.close()
    assert [e.index for e in es] == list(range(1, 12))


# --- locking --------------------------------------------------------------------

def test_wal_lock_second_object_same_process(tmp_path):
    d = str(tmp_path / "wal")
    w = WAL.create(d, b"m", segment_size=SEG)
    with pytest.raises(WALLockedError, match="locked"):
        WAL.open(d, segment_size=SEG)
    with pytest.raises(WALLockedError):
        WAL.create(d, b"m", segment_size=SEG)
    w.close()
    w, _, _, _ = reopen(d)
    w.close()


def test_wal_lock_second_process(tmp_path):
    d = str(tmp_path / "wal")
    w = WAL.create(d, b"m", segment_size=SEG)
    code = ("import sys\n"
            "from easyraft.storage.wal import WAL\n"
            "from easyraft.errors import WALLockedError\n"
            "try:\n    WAL.open(sys.argv[1])\n"
            "except WALLockedError as e:\n    print(e); sys.exit(3)\n"
            "sys.exit(0)\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    try:
        r = subprocess.run([sys.executable, "-c", code, d], capture_output=True, text=True,
                           env=env, cwd=ROOT, timeout=60)
        assert r.returncode == 3, r.stderr
        assert "locked" in r.stdout
    finally:
        w.close()
    r = subprocess.run([sys.executable, "-c", code, d], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr


# --- release / purge ----------------------------------------------------------------

def test_wal_purge_keeps_what_recovery_needs(tmp_path):
    d = str(tmp_path / "wal")
    w = WAL.create(d, b"m", segment_size=SEG)
    _save_batches(w, 1, 601)
    segs = walmod.list_segments(d)
    assert len(segs) > 5
    # Nothing released yet: nothing goes.
    assert w.purge(1) == []
    w.save_snapshot(400, 1)
    assert w.purge(1) == []              # marker written but not released
    w.release_to(400)
    assert w.purge(0) == []              # 0 keeps all
    before = w.segments
    holder = max(i for i, n in enumerate(before) if parse_segment_name(n)[1] <= 400)
    assert holder >= 2
    removed = w.purge(1)
    names = w.segments
    # Exactly the segments before the one holding index 400 went, oldest first.
    assert removed == before[:holder]
    assert names == before[holder:]
    assert sorted(n for n in os.listdir(d) if not n.endswith(".tmp")) == sorted([*names, ".lock"])
    w.save(None, ents(601, 610), True)
    w.close()
    w, _, _, es = reopen(d, 400, 1)
    w.close()
    assert es == ents(401, 610)
    with pytest.raises(CorruptWALError, match="no segment covers"):
        reopen(d, 0, 0)


def test_wal_purge_without_unlink_leaves_files_for_the_caller(tmp_path):
    # The node deletes purged segments on a worker thread (unlinking 64 MiB
    # costs ~20 ms): the WAL forgets them at once; a crash before the files
    # go leaves old segments that recovery skips and the next purge removes.
    d = str(tmp_path / "wal")
    w = WAL.create(d, b"m", segment_size=SEG)
    _save_batches(w, 1, 601)
    w.save_snapshot(400, 1)
    w.release_to(400)
    before = w.segments
    removed = w.purge(1, unlink=False)
    assert removed and removed == before[:len(removed)] and w.segments == before[len(removed):]
    assert all(os.path.exists(os.path.join(d, n)) for n in removed)
    assert w.purge(1, unlink=False) == []       # already forgotten
    w.save(None, ents(601, 610), True)
    w.close()
    w, _, _, es = reopen(d, 400, 1)             # the stale files are still there
    assert es == ents(401, 610)
    w.release_to(400)
    assert w.purge(1) == removed                # and the next purge takes them
    assert not any(os.path.exists(os.path.join(d, n)) for n in removed)
    w.close()
    fileutil.remove_files([os.path.join(d, "missing-is-fine")])


def test_wal_remove_files_goes_in_order_and_stops_at_a_failure(tmp_path):
    names = [tmp_path / f"{i}.wal" for i in range(4)]
    for p in names:
        p.write_bytes(b"x")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "f").write_bytes(b"x")     # os.remove fails on a directory
    order = [str(names[0]), str(tmp_path / "gone-already"), str(names[1]),
             str(tmp_path / "busy"), str(names[2]), str(names[3])]
    # Never past the failure: deleting 2 and 3 while 'busy' stays would be a gap.
    assert fileutil.remove_files(order) == 3
    assert [p.exists() for p in names] == [False, False, True, True]
    with pytest.raises(OSError):
        fileutil.remove_files(order[3:])             # nothing went: the error is raised
    assert fileutil.remove_files([str(names[2]), str(names[3])]) == 2


def test_wal_segment_preparation_is_stepped_and_stops_on_close(tmp_path):
    big = 3 * walmod._FILL_STEP + 4096           # several synced steps and pauses
    d = str(tmp_path / "wal")
    w = WAL.create(d, b"m", segment_size=big)
    path, fd = w._pipeline.take()                  # waits for a whole prepared file
    try:
        assert os.fstat(fd).st_size == big
        with open(path, "rb") as f:
            assert f.read() == bytes(big)
    finally:
        os.close(fd)
        os.remove(path)
    # The next preparation is under way; close() cuts it short and cleans up.
    t0 = time.monotonic()
    w.close()
    assert time.monotonic() - t0 < 2
    assert not [n for n in os.listdir(d) if n.endswith(".tmp")]


def test_wal_purge_bounded_by_newest_marker(tmp_path):
    d = str(tmp_path / "wal")
    w = WAL.create(d, b"m", segment_size=SEG)
    _save_batches(w, 1, 601)
    w.save_snapshot(100, 1)
    w.release_to(600)                    # asks for more than any marker allows
    w.purge(1)
    w.close()
    w, _, _, es = reopen(d, 100, 1)
    w.close()
    assert es == ents(101, 601)


def test_wal_valid_snapshot_entries(tmp_path):
    d = str(tmp_path / "wal")
    w = WAL.create(d, b"m", segment_size=SEG)
    w.save(HardState(term=1, vote=1, commit=50), ents(1, 101), True)
    w.save_snapshot(40, 1)
    w.save_snapshot(90, 1)               # beyond the commit in the hard state
    w.close()
    assert walmod.valid_snapshot_entries(d) == [(0, 0), (1, 40)]


def test_wal_save_skips_empty_hard_state_and_takes_any_sequence(tmp_path):
    d = str(tmp_path / "wal")
    w = WAL.create(d, b"m", segment_size=SEG)
    off = w._offset
    w.save(HardState(), [], must_sync=True)          # nothing to write (etcd: IsEmptyHardState)
    assert w._offset == off
    w.save(HardState(), tuple(ents(1, 3)), must_sync=True)
    w.close()
    w, _, hs, es = reopen(d)
    w.close()
    assert hs == HardState() and es == ents(1, 3)


def test_wal_refused_log_is_not_modified_even_its_torn_tail(tmp_path):
    d, tail, _start, end = _log_with_last_record(tmp_path)
    with open(tail, "r+b") as f:
        f.seek(end)
        f.write(b"\x5a" * 30)                 # a torn write after the last record
    before = open(tail, "rb").read()
    with pytest.raises(CorruptWALError, match="not found"):
        reopen(d, 999, 1)                     # no such snapshot marker
    assert open(tail, "rb").read() == before
    w, _, _, es = reopen(d)                   # a good open repairs it
    w.close()
    assert len(es) == 21 and open(tail, "rb").read()[end:end + 30] == bytes(30)
