"""Follower progress and the progress tracker (etcd: tracker/).

As etcd's NB says, Progress is a state machine whose transitions are mostly
driven from the raft module; this file holds the transitions themselves.
"""
cimport cython
from libc.stdint cimport uint64_t
from libc.stdlib cimport malloc, free

from easyraft._core.inflights cimport Inflights
from easyraft._core.quorum cimport (VoteResult, VoteWon, majority_committed_index,
                                    majority_vote_result)
from easyraft._core.types cimport ConfState

DEF STACK_VOTERS = 16

_STATE_NAMES = {StateProbe: "probe", StateReplicate: "replicate", StateSnapshot: "snapshot"}


@cython.final
cdef class Progress:
    def __cinit__(self, uint64_t match=0, uint64_t next=1, Py_ssize_t max_inflight=256,
                  bint is_learner=False):
        self.match = match
        self.next = next
        self.state = StateProbe
        self.inflights = Inflights(max_inflight)
        self.is_learner = is_learner
        self.recent_active = False
        self.probe_sent = False
        self.pending_snapshot = 0

    cdef void reset_state(self, int state) noexcept:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    cdef void become_probe(self) noexcept:
        # Coming back from a snapshot, the peer has at least the snapshot:
        # probe from just after it rather than from match.
        cdef uint64_t pending
        if self.state == StateSnapshot:
            pending = self.pending_snapshot
            self.reset_state(StateProbe)
            self.next = max(self.match + 1, pending + 1)
        else:
            self.reset_state(StateProbe)
            self.next = self.match + 1

    cdef void become_replicate(self) noexcept:
        self.reset_state(StateReplicate)
        self.next = self.match + 1

    cdef void become_snapshot(self, uint64_t snapshot_index) noexcept:
        self.reset_state(StateSnapshot)
        self.pending_snapshot = snapshot_index

    cdef bint maybe_update(self, uint64_t n) noexcept:
        # An ack for index n: advance match (if newer) and next (at least n+1).
        cdef bint updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probe_sent = False
        if self.next < n + 1:
            self.next = n + 1
        return updated

    cdef void optimistic_update(self, uint64_t n) noexcept:
        self.next = n + 1

    cdef bint maybe_decr_to(self, uint64_t rejected, uint64_t match_hint) noexcept:
        # A MsgApp probing at `rejected` was refused; the peer hints that its
        # log may match up to match_hint. Returns False for stale rejections.
        if self.state == StateReplicate:
            if rejected <= self.match:
                return False
            # Directly fall back to the last known match.
            self.next = self.match + 1
            return True
        if self.next == 0 or self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), 1)
        self.probe_sent = False
        return True

    cdef bint is_paused(self) noexcept:
        if self.state == StateProbe:
            return self.probe_sent
        if self.state == StateReplicate:
            return self.inflights.full()
        return True

    @property
    def state_name(self):
        return _STATE_NAMES[self.state]

    def __repr__(self):
        return (f"Progress(match={self.match}, next={self.next}, state={_STATE_NAMES[self.state]}, "
                f"learner={self.is_learner}, inflight={len(self.inflights)})")


@cython.final
cdef class ProgressTracker:
    def __cinit__(self, Py_ssize_t max_inflight):
        self.voters = ()
        self.learners = ()
        self.progress = {}
        self.votes = {}
        self.max_inflight = max_inflight

    cdef Progress get(self, uint64_t id):
        return <Progress>self.progress.get(id)

    cdef Progress init_progress(self, uint64_t id, uint64_t match, uint64_t next, bint is_learner):
        cdef Progress pr = Progress(match, next, self.max_inflight, is_learner)
        self.progress[id] = pr
        return pr

    cdef void set_config(self, tuple voters, tuple learners):
        self.voters = tuple(sorted(voters))
        self.learners = tuple(sorted(learners))

    cdef ConfState conf_state(self):
        return ConfState.new(self.voters, self.learners)

    cdef bint is_singleton(self):
        return len(self.voters) == 1

    cdef uint64_t committed(self) except? 0:
        # The highest index a majority of voters has in its log.
        cdef uint64_t stack[STACK_VOTERS]
        cdef uint64_t *acked = stack
        cdef Py_ssize_t n = len(self.voters), i = 0
        cdef Progress pr
        if n > STACK_VOTERS:
            acked = <uint64_t *>malloc(n * sizeof(uint64_t))
            if acked == NULL:
                raise MemoryError()
        try:
            for vid in self.voters:
                pr = <Progress>self.progress.get(vid)
                acked[i] = pr.match if pr is not None else 0
                i += 1
            return majority_committed_index(acked, n)
        finally:
            if acked != stack:
                free(acked)

    cdef void reset_votes(self):
        self.votes = {}

    cdef void record_vote(self, uint64_t id, bint granted):
        # Only the first vote of each peer counts.
        if id not in self.votes:
            self.votes[id] = granted

    cdef VoteResult tally_votes(self, Py_ssize_t *granted, Py_ssize_t *rejected):
        cdef Py_ssize_t g = 0, r = 0
        for vid in self.voters:
            v = self.votes.get(vid)
            if v is None:
                continue
            if v:
                g += 1
            else:
                r += 1
        granted[0] = g
        rejected[0] = r
        return majority_vote_result(g, r, len(self.voters))

    cdef VoteResult vote_result_of(self, dict acks):
        # Treat acks (id -> True) as votes: used by ReadIndex to see whether a
        # quorum confirmed our leadership.
        cdef Py_ssize_t g = 0, r = 0
        for vid in self.voters:
            v = acks.get(vid)
            if v is None:
                continue
            if v:
                g += 1
            else:
                r += 1
        return majority_vote_result(g, r, len(self.voters))

    cdef bint quorum_active(self):
        # Whether a quorum of voters was recently active (CheckQuorum).
        cdef Py_ssize_t g = 0, r = 0
        cdef Progress pr
        for vid in self.voters:
            pr = <Progress>self.progress.get(vid)
            if pr is None:
                continue
            if pr.recent_active:
                g += 1
            else:
                r += 1
        return majority_vote_result(g, r, len(self.voters)) == VoteWon
