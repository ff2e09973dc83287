# Wire and log value types of the core (etcd: raftpb/raft.proto).
#
# Every record here is a final cdef class with typed fields: no per-object
# __dict__, C-level access from the other _core modules, and a
# `@staticmethod new(...)` factory that skips keyword parsing on hot paths.
# Log positions and terms are uint64_t, as in etcd.
from libc.stdint cimport uint8_t, uint32_t, uint64_t


cpdef enum MsgType:
    MsgHup = 0
    MsgBeat = 1
    MsgProp = 2
    MsgApp = 3
    MsgAppResp = 4
    MsgVote = 5
    MsgVoteResp = 6
    MsgSnap = 7
    MsgHeartbeat = 8
    MsgHeartbeatResp = 9
    MsgUnreachable = 10
    MsgSnapStatus = 11
    MsgCheckQuorum = 12
    MsgTransferLeader = 13
    MsgTimeoutNow = 14
    MsgReadIndex = 15
    MsgReadIndexResp = 16
    MsgPreVote = 17
    MsgPreVoteResp = 18

# One past the highest MsgType value; the codec rejects anything >= this.
cdef enum:
    MSG_TYPE_COUNT = 19

cpdef enum EntryType:
    EntryNormal = 0
    EntryConfChange = 1

cpdef enum ConfChangeType:
    ConfChangeAddNode = 0
    ConfChangeRemoveNode = 1
    ConfChangeUpdateNode = 2
    ConfChangeAddLearnerNode = 3

cpdef enum StateType:
    StateFollower = 0
    StateCandidate = 1
    StateLeader = 2
    StatePreCandidate = 3

# None is 0 in every id field: node ids are non-zero (seed README).
cdef enum:
    NONE = 0


cdef class Entry:
    # One log entry. Immutable once built: the same object may sit in the
    # unstable log and in several outgoing messages at once.
    cdef readonly uint64_t term
    cdef readonly uint64_t index
    cdef readonly uint8_t type      # EntryType
    cdef readonly bytes data        # never None; b"" for the leader's no-op

    @staticmethod
    cdef Entry new(uint64_t term, uint64_t index, uint8_t type, bytes data)


cdef class HardState:
    # The state that must reach stable storage before messages are sent.
    cdef readonly uint64_t term
    cdef readonly uint64_t vote
    cdef readonly uint64_t commit

    @staticmethod
    cdef HardState new(uint64_t term, uint64_t vote, uint64_t commit)
    cdef bint same(self, HardState other)


cdef class SoftState:
    # Volatile state: who leads and our role. Never persisted.
    cdef readonly uint64_t lead
    cdef readonly int raft_state    # StateType

    @staticmethod
    cdef SoftState new(uint64_t lead, int raft_state)


cdef class ConfState:
    # Membership: sorted, duplicate-free voter and learner ids.
    cdef readonly tuple voters
    cdef readonly tuple learners

    @staticmethod
    cdef ConfState new(object voters, object learners)


cdef class SnapshotMetadata:
    cdef readonly uint64_t index    # last log position the snapshot covers
    cdef readonly uint64_t term     # term of that position
    cdef readonly ConfState conf_state

    @staticmethod
    cdef SnapshotMetadata new(uint64_t index, uint64_t term, ConfState conf_state)


cdef class Snapshot:
    cdef readonly bytes data        # the application's state, opaque to raft
    cdef readonly SnapshotMetadata metadata

    @staticmethod
    cdef Snapshot new(bytes data, SnapshotMetadata metadata)
    cdef bint is_empty(self)


cdef class ConfChange:
    cdef readonly uint8_t type      # ConfChangeType
    cdef readonly uint64_t node_id
    cdef readonly bytes context     # e.g. the member's peer URL

    @staticmethod
    cdef ConfChange new(uint8_t type, uint64_t node_id, bytes context)


cdef class ReadState:
    # A linearizable read point: once applied >= index, the read for
    # request_ctx may be served from local state (Raft thesis §6.4).
    cdef readonly uint64_t index
    cdef readonly bytes request_ctx

    @staticmethod
    cdef ReadState new(uint64_t index, bytes request_ctx)


cdef class Message:
    # Fields are public: the core fills term/frm when it sends, and tests
    # build messages by hand.
    cdef public uint8_t type        # MsgType
    cdef public uint64_t to
    cdef public uint64_t frm
    cdef public uint64_t term
    cdef public uint64_t log_term
    cdef public uint64_t index
    # list[Entry], or None for none: most messages carry no entries, and an
    # empty list per decoded heartbeat was a third of its decoding cost.
    # Python sees the `entries` property (created on first access); core
    # code uses msg_entry_count()/msg_entries() below.
    cdef list _entries
    cdef public uint64_t commit
    cdef public Snapshot snapshot   # None unless type == MsgSnap
    cdef public bint reject
    cdef public uint64_t reject_hint
    cdef public bytes context       # never None

    @staticmethod
    cdef Message new(uint8_t type, uint64_t to, uint64_t frm, uint64_t term)


cdef Snapshot empty_snapshot()
cdef bint is_local_msg(int t) noexcept
cdef bint is_response_msg(int t) noexcept
cdef int vote_resp_type(int t) noexcept


# Size an entry is charged for against max_size_per_msg: its wire size
# (codec.ENTRY_HEADER_SIZE + payload), so limits match what is sent.
cdef enum:
    ENTRY_WIRE_OVERHEAD = 21

from cpython.bytes cimport PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_SIZE

cdef inline Py_ssize_t msg_entry_count(Message m) noexcept:
    return 0 if m._entries is None else PyList_GET_SIZE(m._entries)

cdef inline list msg_entries(Message m):
    # The list itself, created on first use, for code that keeps or indexes it.
    if m._entries is None:
        m._entries = []
    return m._entries

cdef inline Py_ssize_t entry_wire_size(Entry e) noexcept:
    return ENTRY_WIRE_OVERHEAD + PyBytes_GET_SIZE(e.data)
