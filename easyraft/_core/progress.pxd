# Per-follower replication state and the tracker of all of them
# (etcd: tracker/progress.go, tracker/tracker.go).
from libc.stdint cimport uint64_t
from easyraft._core.inflights cimport Inflights
from easyraft._core.quorum cimport VoteResult
from easyraft._core.types cimport ConfState

cpdef enum ProgressState:
    # Probe: one MsgApp per heartbeat interval until we learn the match.
    StateProbe = 0
    # Replicate: stream MsgApp optimistically, bounded by inflights.
    StateReplicate = 1
    # Snapshot: a snapshot is on its way; send nothing else.
    StateSnapshot = 2


cdef class Progress:
    cdef public uint64_t match          # highest index known replicated on the peer
    cdef public uint64_t next           # next index to send; invariant: match < next
    cdef public int state               # ProgressState
    cdef public uint64_t pending_snapshot  # index of the snapshot in flight (StateSnapshot)
    cdef public bint recent_active      # heard from within the last election timeout
    cdef public bint probe_sent         # StateProbe: a MsgApp is unacknowledged, pause
    cdef public bint is_learner
    cdef readonly Inflights inflights

    cdef void reset_state(self, int state) noexcept
    cdef void become_probe(self) noexcept
    cdef void become_replicate(self) noexcept
    cdef void become_snapshot(self, uint64_t snapshot_index) noexcept
    cdef bint maybe_update(self, uint64_t n) noexcept
    cdef void optimistic_update(self, uint64_t n) noexcept
    cdef bint maybe_decr_to(self, uint64_t rejected, uint64_t match_hint) noexcept
    cdef bint is_paused(self) noexcept


cdef class ProgressTracker:
    cdef readonly tuple voters          # sorted voter ids
    cdef readonly tuple learners        # sorted learner ids
    cdef readonly dict progress         # id -> Progress, voters and learners
    cdef dict votes                     # id -> granted (bint), current election only
    cdef readonly Py_ssize_t max_inflight

    cdef Progress get(self, uint64_t id)
    cdef Progress init_progress(self, uint64_t id, uint64_t match, uint64_t next, bint is_learner)
    cdef void set_config(self, tuple voters, tuple learners)
    cdef ConfState conf_state(self)
    cdef bint is_singleton(self)
    cdef uint64_t committed(self) except? 0
    cdef void reset_votes(self)
    cdef void record_vote(self, uint64_t id, bint granted)
    cdef VoteResult tally_votes(self, Py_ssize_t *granted, Py_ssize_t *rejected)
    cdef VoteResult vote_result_of(self, dict acks)
    cdef bint quorum_active(self)
