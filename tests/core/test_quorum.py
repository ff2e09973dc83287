"""Quorum math against 'dumb' alternatives (etcd: quorum/quick_test.go), and
the inflight window against a plain-Python model (etcd: tracker/inflights_test.go)."""
from collections import deque

import pytest
from hypothesis import given, settings, strategies as st

from easyraft._core.inflights import Inflights
from easyraft._core.quorum import committed_index, vote_result
from easyraft.core import VoteResult

DET = settings(derandomize=True, database=None, deadline=None, max_examples=300)


def dumb_committed_index(acked):
    """The highest index that at least a majority of voters acknowledged."""
    if not acked:
        return 2**64 - 1
    q = len(acked) // 2 + 1
    return max((idx for idx in acked if sum(1 for a in acked if a >= idx) >= q), default=0)


@DET
@given(st.lists(st.integers(0, 2**64 - 1) | st.integers(0, 20), max_size=11))
def test_quorum_committed_index_agrees_with_dumb_version(acked):
    assert committed_index(acked) == dumb_committed_index(acked)
    assert committed_index(list(reversed(acked))) == dumb_committed_index(acked)


@pytest.mark.parametrize("acked,want", [
    ([], 2**64 - 1), ([5], 5), ([5, 1], 1), ([5, 1, 3], 3), ([1, 2, 3, 4], 2),
    ([9, 9, 1, 1, 1], 1), ([9, 9, 9, 1, 1], 9),
])
def test_quorum_committed_index_table(acked, want):
    assert committed_index(acked) == want


def dumb_vote_result(granted, rejected, n):
    if n == 0:
        return VoteResult.VoteWon
    q = n // 2 + 1
    if granted >= q:
        return VoteResult.VoteWon
    if n - rejected >= q:
        return VoteResult.VotePending
    return VoteResult.VoteLost


@DET
@given(st.integers(0, 11).flatmap(lambda n: st.tuples(
    st.just(n), st.integers(0, n)).flatmap(lambda t: st.tuples(
        st.just(t[0]), st.just(t[1]), st.integers(0, t[0] - t[1])))))
def test_quorum_vote_result_agrees_with_dumb_version(t):
    n, granted, rejected = t
    assert vote_result(granted, rejected, n) == dumb_vote_result(granted, rejected, n)


@DET
@given(st.integers(1, 8), st.lists(st.tuples(st.booleans(), st.integers(0, 40)), max_size=80))
def test_inflights_behave_like_a_bounded_fifo(size, ops):
    inf, model = Inflights(size), deque()
    last = 0
    for is_add, arg in ops:
        if is_add:
            if len(model) == size:
                with pytest.raises(AssertionError):
                    inf.py_add(last + 1)
                continue
            last += 1 + arg % 3          # indexes only grow
            inf.py_add(last)
            model.append(last)
        else:
            to = arg if not model else model[0] - 1 + arg % (len(model) + 2)
            inf.py_free_le(to)
            while model and model[0] <= to:
                model.popleft()
        assert len(inf) == len(model)
        assert inf.py_full() == (len(model) == size)
    assert inf.capacity == size
