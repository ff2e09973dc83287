"""Majority quorum math (etcd: quorum/majority.go)."""
from libc.stdint cimport uint64_t, UINT64_MAX
from libc.stdlib cimport malloc, free


cdef inline void _insertion_sort(uint64_t *a, Py_ssize_t n) noexcept:
    # Voter sets are small (1..11 in practice): insertion sort beats qsort's
    # call overhead here, as etcd's "insertion sort for n <= 7" note says.
    cdef Py_ssize_t i, j
    cdef uint64_t v
    for i in range(1, n):
        v = a[i]
        j = i - 1
        while j >= 0 and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v


cdef uint64_t majority_committed_index(uint64_t *acked, Py_ssize_t n) noexcept:
    if n == 0:
        return UINT64_MAX
    _insertion_sort(acked, n)
    # With acked sorted ascending, the element at n - (n//2 + 1) is acked by
    # at least n//2 + 1 voters (itself and everyone above it).
    return acked[n - (n // 2 + 1)]


cdef VoteResult majority_vote_result(Py_ssize_t granted, Py_ssize_t rejected, Py_ssize_t n) noexcept:
    cdef Py_ssize_t q = n // 2 + 1
    if n == 0:
        # An empty configuration wins every vote (etcd: by convention).
        return VoteWon
    if granted >= q:
        return VoteWon
    if granted + (n - granted - rejected) >= q:
        return VotePending
    return VoteLost


def committed_index(acked):
    """Return the index a majority of voters acknowledged (test/bench hook)."""
    cdef Py_ssize_t n = len(acked), i
    cdef uint64_t *buf = <uint64_t *>malloc(max(n, 1) * sizeof(uint64_t))
    if buf == NULL:
        raise MemoryError()
    try:
        for i in range(n):
            buf[i] = acked[i]
        return majority_committed_index(buf, n)
    finally:
        free(buf)


def vote_result(Py_ssize_t granted, Py_ssize_t rejected, Py_ssize_t n):
    """Return the VoteResult for a tally (test hook)."""
    return VoteResult(majority_vote_result(granted, rejected, n))
