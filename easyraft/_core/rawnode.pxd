# The application's handle on a raft node (etcd: rawnode.go, node.go Ready).
from easyraft._core.types cimport SoftState, HardState, Snapshot
from easyraft._core.raft cimport Raft

cdef class Ready:
    # The current volatile state, or None when unchanged since the last Ready.
    cdef readonly SoftState soft_state
    # The state to save to stable storage BEFORE messages are sent, or None
    # when unchanged.
    cdef readonly HardState hard_state
    # Entries to save to stable storage BEFORE messages are sent.
    cdef readonly list entries
    # A snapshot to save to stable storage, or None.
    cdef readonly Snapshot snapshot
    # Entries to apply to the state machine; already persisted.
    cdef readonly list committed_entries
    # Messages to send AFTER entries and hard state are persisted. A
    # MsgSnap must be acknowledged with report_snapshot().
    cdef readonly list messages
    # Linearizable read points whose wait is over (apply up to index first).
    cdef readonly list read_states
    # Whether hard_state/entries must be synced to disk before sending
    # (false for a commit-index-only change).
    cdef readonly bint must_sync

cdef class RawNode:
    cdef Raft raft
    cdef SoftState prev_soft_st
    cdef HardState prev_hard_st
