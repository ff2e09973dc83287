# Majority quorum math (etcd: quorum/majority.go). Pure functions over C
# arrays; the tracker gathers the inputs. Joint configurations are not
# supported (easyraft applies one simple conf change at a time).
from libc.stdint cimport uint64_t

cpdef enum VoteResult:
    VotePending = 1
    VoteLost = 2
    VoteWon = 3

# The largest index acknowledged by a majority of `n` voters, given each
# voter's acknowledged index in acked[0..n). Sorts acked in place.
# An empty configuration commits everything (etcd returns MaxUint64), so that
# joint logic elsewhere stays uniform; callers never commit past their log.
cdef uint64_t majority_committed_index(uint64_t *acked, Py_ssize_t n) noexcept

# Election outcome given how many voters granted / rejected out of n.
cdef VoteResult majority_vote_result(Py_ssize_t granted, Py_ssize_t rejected, Py_ssize_t n) noexcept
