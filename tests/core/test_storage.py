"""MemoryStorage table tests (etcd: storage_test.go). The log keeps a dummy
entry at its compaction point: index first_index()-1 holds the snapshot's
term, and entries before it are gone (CompactedError)."""
import pytest

from easyraft.core import (
    CompactedError,
    ConfState,
    Entry,
    HardState,
    MemoryStorage,
    RaftError,
    Snapshot,
    SnapshotMetadata,
    UnavailableError,
)
from easyraft.errors import SnapOutOfDateError


def storage_3_4_5():
    """etcd's fixture: entries (3,3), (4,4), (5,5) after a snapshot at (3, 3)."""
    st = MemoryStorage()
    st.apply_snapshot(Snapshot(metadata=SnapshotMetadata(index=3, term=3,
                                                         conf_state=ConfState([1, 2, 3]))))
    st.append([Entry(term=4, index=4, data=b"a" * 10), Entry(term=5, index=5, data=b"b" * 10)])
    return st


def ids(ents):
    return [(e.index, e.term) for e in ents]


@pytest.mark.parametrize("i,want_term,want_err", [
    (2, None, CompactedError),
    (3, 3, None),
    (4, 4, None),
    (5, 5, None),
    (6, None, UnavailableError),
])
def test_storage_term(i, want_term, want_err):
    st = storage_3_4_5()
    if want_err:
        with pytest.raises(want_err):
            st.term(i)
    else:
        assert st.term(i) == want_term


@pytest.mark.parametrize("lo,hi,max_size,want,want_err", [
    (2, 6, None, None, CompactedError),
    (3, 4, None, None, CompactedError),     # the dummy entry is not an entry
    (4, 5, None, [(4, 4)], None),
    (4, 6, None, [(4, 4), (5, 5)], None),
    (4, 6, 0, [(4, 4)], None),              # at least one entry, whatever the limit
    (4, 6, 1, [(4, 4)], None),
    (4, 6, 10 ** 9, [(4, 4), (5, 5)], None),
    (4, 7, None, None, UnavailableError),
    (5, 5, None, [], None),
])
def test_storage_entries(lo, hi, max_size, want, want_err):
    st = storage_3_4_5()
    if want_err:
        with pytest.raises(want_err):
            st.entries(lo, hi, max_size)
    else:
        assert ids(st.entries(lo, hi, max_size)) == want


def test_storage_first_last_index_and_initial_state():
    st = storage_3_4_5()
    assert (st.first_index(), st.last_index()) == (4, 5)
    st.set_hard_state(HardState(term=5, vote=2, commit=4))
    assert st.initial_state() == (HardState(term=5, vote=2, commit=4), ConfState([1, 2, 3]))


@pytest.mark.parametrize("index,want_err,want_first,want_len", [
    (2, CompactedError, 4, 2),
    (3, CompactedError, 4, 2),
    (4, None, 5, 1),
    (5, None, 6, 0),
    (6, UnavailableError, 4, 2),
])
def test_storage_compact(index, want_err, want_first, want_len):
    st = storage_3_4_5()
    if want_err:
        with pytest.raises(want_err):
            st.compact(index)
    else:
        st.compact(index)
        assert st.term(index) == index          # the new dummy keeps its term
    assert st.first_index() == want_first
    assert st.last_index() - st.first_index() + 1 == want_len


@pytest.mark.parametrize("index,want_err", [(3, SnapOutOfDateError), (4, None), (5, None),
                                            (6, UnavailableError)])
def test_storage_create_snapshot(index, want_err):
    st = storage_3_4_5()
    cs = ConfState([1, 2, 3], [4])
    if want_err:
        with pytest.raises(want_err):
            st.create_snapshot(index, cs, b"data")
        return
    snap = st.create_snapshot(index, cs, b"data")
    assert snap == Snapshot(data=b"data", metadata=SnapshotMetadata(index=index, term=index,
                                                                   conf_state=cs))
    assert st.snapshot() == snap
    assert st.last_index() == 5                 # creating a snapshot compacts nothing


@pytest.mark.parametrize("entries,want", [
    # (index, term) of appended entries -> the log after it
    ([(4, 4), (5, 5)], [(4, 4), (5, 5)]),                   # duplicate: no change
    ([(4, 4), (5, 6), (6, 6)], [(4, 4), (5, 6), (6, 6)]),   # conflict at 5: truncate
    ([(4, 4), (5, 5), (6, 5)], [(4, 4), (5, 5), (6, 5)]),   # extend
    ([(2, 3), (3, 3), (4, 5)], [(4, 5)]),                   # starts in the compacted part
    ([(4, 5)], [(4, 5)]),                                   # conflict at the first index
    ([(6, 5)], [(4, 4), (5, 5), (6, 5)]),                   # plain append at the end
    ([(1, 1), (2, 2)], [(4, 4), (5, 5)]),                   # wholly compacted: ignored
])
def test_storage_append(entries, want):
    st = storage_3_4_5()
    st.append([Entry(term=t, index=i) for i, t in entries])
    assert ids(st.entries(st.first_index(), st.last_index() + 1)) == want


def test_storage_append_with_gap_raises():
    st = storage_3_4_5()
    with pytest.raises(RaftError, match="missing log entry"):
        st.append([Entry(term=5, index=7)])
    assert st.last_index() == 5


def test_storage_append_refuses_non_entries_without_changing_the_log():
    st = storage_3_4_5()
    with pytest.raises(TypeError, match="Entry"):
        st.append([Entry(term=4, index=4), "not an entry"])     # would truncate 5
    assert ids(st.entries(st.first_index(), st.last_index() + 1)) == [(4, 4), (5, 5)]


def test_storage_apply_snapshot_replaces_log():
    st = storage_3_4_5()
    with pytest.raises(SnapOutOfDateError):
        st.apply_snapshot(Snapshot(metadata=SnapshotMetadata(index=3, term=3)))
    snap = Snapshot(data=b"s",
                    metadata=SnapshotMetadata(index=10, term=7, conf_state=ConfState([1])))
    st.apply_snapshot(snap)
    assert (st.first_index(), st.last_index(), st.term(10)) == (11, 10, 7)
    assert st.snapshot() == snap
    assert st.initial_state()[1] == ConfState([1])
    with pytest.raises(CompactedError):
        st.term(9)


def test_storage_entries_are_payload_exact():
    st = MemoryStorage()
    data = [bytes([i]) * i for i in range(1, 50)]
    st.append([Entry(term=1, index=i + 1, data=d) for i, d in enumerate(data)])
    got = st.entries(1, 50)
    assert [e.data for e in got] == data
    assert all(e.term == 1 for e in got)
