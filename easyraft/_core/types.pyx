"""Value types of the raft core (etcd: raftpb) and the core's exceptions.

Entries, messages and states are final cdef classes with typed slots. Python
callers build them with keyword arguments; the core uses the C factories.
"""
cimport cython
from libc.stdint cimport uint8_t, uint64_t


# --- errors -----------------------------------------------------------------
# The whole tree hangs off RaftError so that `except easyraft.RaftError`
# catches everything the library raises on purpose. Messages carry a
# "raft: " / "codec: " prefix naming the subsystem, as etcd's sentinels do.

class RaftError(Exception):
    """Base class of every error easyraft raises on purpose."""


class ProposalDroppedError(RaftError):
    """The proposal was not accepted: no leader, leadership transfer, or a
    conf change already pending."""


class CompactedError(RaftError):
    """The requested index is older than the storage's first index."""


class SnapOutOfDateError(RaftError):
    """The snapshot is older than the one storage already holds."""


class UnavailableError(RaftError):
    """The requested entries are not available (beyond the last index)."""


class SnapshotTemporarilyUnavailableError(RaftError):
    """The snapshot is being built; ask again later."""


class StepLocalMsgError(RaftError):
    """A local-only message type was stepped as if it came from a peer."""


class StepPeerNotFoundError(RaftError):
    """A response came from a node that is not in the configuration."""


class CodecError(RaftError, ValueError):
    """Encoded bytes are truncated, malformed or exceed a size limit."""


class FrameTooLargeError(CodecError):
    """A frame's length prefix exceeds the configured limit."""


class ConfChangeError(RaftError, ValueError):
    """A membership change is invalid (unknown id, last voter removed, ...)."""


# --- helpers over message types --------------------------------------------

cdef bint is_local_msg(int t) noexcept:
    return (t == MsgHup or t == MsgBeat or t == MsgUnreachable
            or t == MsgSnapStatus or t == MsgCheckQuorum)


cdef bint is_response_msg(int t) noexcept:
    return (t == MsgAppResp or t == MsgVoteResp or t == MsgHeartbeatResp
            or t == MsgUnreachable or t == MsgPreVoteResp)


cdef int vote_resp_type(int t) noexcept:
    if t == MsgVote:
        return MsgVoteResp
    return MsgPreVoteResp


cdef inline bytes _as_bytes(object value, str name):
    if value is None:
        return b""
    if isinstance(value, bytes):
        return <bytes>value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{name} must be bytes, not {value.__class__.__name__}")


cdef inline str _enum_name(object enum_cls, int value):
    try:
        return enum_cls(value).name
    except ValueError:
        return str(value)


# --- records ---------------------------------------------------------------

# Entries and messages never take part in reference cycles (they hold
# bytes, lists of entries and snapshots, nothing that points back), so they
# skip the cyclic GC: no tracking on every allocation, no traversal on every
# collection of a busy node.
@cython.final
@cython.no_gc
@cython.freelist(512)
cdef class Entry:
    def __init__(self, uint64_t term=0, uint64_t index=0, int type=EntryNormal, data=b""):
        if type != EntryNormal and type != EntryConfChange:
            raise ValueError(f"raft: unknown entry type {type}")
        self.term = term
        self.index = index
        self.type = <uint8_t>type
        self.data = _as_bytes(data, "data")

    @staticmethod
    cdef Entry new(uint64_t term, uint64_t index, uint8_t type, bytes data):
        cdef Entry e = Entry.__new__(Entry)
        e.term = term
        e.index = index
        e.type = type
        e.data = data
        return e

    def __eq__(self, other):
        if not isinstance(other, Entry):
            return NotImplemented
        cdef Entry o = <Entry>other
        return (self.term == o.term and self.index == o.index
                and self.type == o.type and self.data == o.data)

    def __hash__(self):
        return hash((self.term, self.index, self.type, self.data))

    def __repr__(self):
        return (f"Entry(term={self.term}, index={self.index}, "
                f"type={_enum_name(EntryType, self.type)}, data={self.data[:32]!r})")

    def __reduce__(self):
        return (Entry, (self.term, self.index, self.type, self.data))


@cython.final
cdef class HardState:
    def __init__(self, uint64_t term=0, uint64_t vote=0, uint64_t commit=0):
        self.term = term
        self.vote = vote
        self.commit = commit

    @staticmethod
    cdef HardState new(uint64_t term, uint64_t vote, uint64_t commit):
        cdef HardState hs = HardState.__new__(HardState)
        hs.term = term
        hs.vote = vote
        hs.commit = commit
        return hs

    cdef bint same(self, HardState other):
        return (other is not None and self.term == other.term
                and self.vote == other.vote and self.commit == other.commit)

    def is_empty(self):
        return self.term == 0 and self.vote == 0 and self.commit == 0

    def __eq__(self, other):
        if not isinstance(other, HardState):
            return NotImplemented
        return self.same(<HardState>other)

    def __hash__(self):
        return hash((self.term, self.vote, self.commit))

    def __repr__(self):
        return f"HardState(term={self.term}, vote={self.vote}, commit={self.commit})"

    def __reduce__(self):
        return (HardState, (self.term, self.vote, self.commit))


@cython.final
cdef class SoftState:
    def __init__(self, uint64_t lead=0, int raft_state=StateFollower):
        self.lead = lead
        self.raft_state = raft_state

    @staticmethod
    cdef SoftState new(uint64_t lead, int raft_state):
        cdef SoftState ss = SoftState.__new__(SoftState)
        ss.lead = lead
        ss.raft_state = raft_state
        return ss

    def __eq__(self, other):
        if not isinstance(other, SoftState):
            return NotImplemented
        cdef SoftState o = <SoftState>other
        return self.lead == o.lead and self.raft_state == o.raft_state

    def __hash__(self):
        return hash((self.lead, self.raft_state))

    def __repr__(self):
        return f"SoftState(lead={self.lead}, raft_state={_enum_name(StateType, self.raft_state)})"


cdef tuple _id_tuple(object ids, str name):
    if ids is None:
        return ()
    cdef list out = []
    for i in ids:
        if not isinstance(i, int) or isinstance(i, bool):
            raise TypeError(f"raft: {name} ids must be int, got {i.__class__.__name__}")
        if i <= 0 or i >= (1 << 64):
            raise ValueError(f"raft: {name} id {i} out of range (must be 1..2**64-1)")
        out.append(i)
    return tuple(sorted(set(out)))


@cython.final
cdef class ConfState:
    def __init__(self, voters=(), learners=()):
        self.voters = _id_tuple(voters, "voter")
        self.learners = _id_tuple(learners, "learner")
        if set(self.voters) & set(self.learners):
            raise ValueError("raft: a node cannot be both voter and learner")

    @staticmethod
    cdef ConfState new(object voters, object learners):
        cdef ConfState cs = ConfState.__new__(ConfState)
        cs.voters = tuple(sorted(voters))
        cs.learners = tuple(sorted(learners))
        return cs

    def __eq__(self, other):
        if not isinstance(other, ConfState):
            return NotImplemented
        cdef ConfState o = <ConfState>other
        return self.voters == o.voters and self.learners == o.learners

    def __hash__(self):
        return hash((self.voters, self.learners))

    def __repr__(self):
        return f"ConfState(voters={list(self.voters)}, learners={list(self.learners)})"

    def __reduce__(self):
        return (ConfState, (self.voters, self.learners))


@cython.final
cdef class SnapshotMetadata:
    def __init__(self, uint64_t index=0, uint64_t term=0, ConfState conf_state=None):
        self.index = index
        self.term = term
        self.conf_state = conf_state if conf_state is not None else ConfState.new((), ())

    @staticmethod
    cdef SnapshotMetadata new(uint64_t index, uint64_t term, ConfState conf_state):
        cdef SnapshotMetadata m = SnapshotMetadata.__new__(SnapshotMetadata)
        m.index = index
        m.term = term
        m.conf_state = conf_state
        return m

    def __eq__(self, other):
        if not isinstance(other, SnapshotMetadata):
            return NotImplemented
        cdef SnapshotMetadata o = <SnapshotMetadata>other
        return self.index == o.index and self.term == o.term and self.conf_state == o.conf_state

    def __hash__(self):
        return hash((self.index, self.term, self.conf_state))

    def __repr__(self):
        return f"SnapshotMetadata(index={self.index}, term={self.term}, conf_state={self.conf_state!r})"

    def __reduce__(self):
        return (SnapshotMetadata, (self.index, self.term, self.conf_state))


cdef Snapshot _EMPTY_SNAPSHOT = None

cdef Snapshot empty_snapshot():
    global _EMPTY_SNAPSHOT
    if _EMPTY_SNAPSHOT is None:
        _EMPTY_SNAPSHOT = Snapshot.new(b"", SnapshotMetadata.new(0, 0, ConfState.new((), ())))
    return _EMPTY_SNAPSHOT


@cython.final
cdef class Snapshot:
    def __init__(self, data=b"", SnapshotMetadata metadata=None):
        self.data = _as_bytes(data, "data")
        self.metadata = metadata if metadata is not None else SnapshotMetadata()

    @staticmethod
    cdef Snapshot new(bytes data, SnapshotMetadata metadata):
        cdef Snapshot s = Snapshot.__new__(Snapshot)
        s.data = data
        s.metadata = metadata
        return s

    cdef bint is_empty(self):
        return self.metadata.index == 0

    def __eq__(self, other):
        if not isinstance(other, Snapshot):
            return NotImplemented
        cdef Snapshot o = <Snapshot>other
        return self.metadata == o.metadata and self.data == o.data

    def __hash__(self):
        return hash((self.metadata, self.data))

    def __repr__(self):
        return f"Snapshot(metadata={self.metadata!r}, data=<{len(self.data)} bytes>)"

    def __reduce__(self):
        return (Snapshot, (self.data, self.metadata))


# ConfChange wire form (cold path, fixed width, little-endian):
#   u8 version(=1) | u8 type | u64 node_id | u32 len(context) | context
cdef int _CC_VERSION = 1
cdef Py_ssize_t _CC_HEADER = 1 + 1 + 8 + 4

@cython.final
cdef class ConfChange:
    def __init__(self, int type=ConfChangeAddNode, uint64_t node_id=0, context=b""):
        if type < ConfChangeAddNode or type > ConfChangeAddLearnerNode:
            raise ValueError(f"raft: unknown conf change type {type}")
        self.type = <uint8_t>type
        self.node_id = node_id
        self.context = _as_bytes(context, "context")

    @staticmethod
    cdef ConfChange new(uint8_t type, uint64_t node_id, bytes context):
        cdef ConfChange cc = ConfChange.__new__(ConfChange)
        cc.type = type
        cc.node_id = node_id
        cc.context = context
        return cc

    def encode(self):
        """Return the binary form stored in an EntryConfChange entry."""
        return (bytes((_CC_VERSION, self.type)) + self.node_id.to_bytes(8, "little")
                + len(self.context).to_bytes(4, "little") + self.context)

    @staticmethod
    def decode(data):
        """Parse what encode() produced; CodecError on anything else."""
        cdef bytes b = _as_bytes(data, "data")
        if len(b) < _CC_HEADER:
            raise CodecError(f"codec: conf change truncated ({len(b)} bytes, need {_CC_HEADER})")
        if b[0] != _CC_VERSION:
            raise CodecError(f"codec: conf change version {b[0]} not supported")
        if b[1] > ConfChangeAddLearnerNode:
            raise CodecError(f"codec: unknown conf change type {b[1]}")
        n = int.from_bytes(b[10:14], "little")
        if len(b) != _CC_HEADER + n:
            raise CodecError(f"codec: conf change context length {n} does not match "
                             f"{len(b) - _CC_HEADER} bytes present")
        return ConfChange.new(b[1], int.from_bytes(b[2:10], "little"), b[_CC_HEADER:])

    def __eq__(self, other):
        if not isinstance(other, ConfChange):
            return NotImplemented
        cdef ConfChange o = <ConfChange>other
        return self.type == o.type and self.node_id == o.node_id and self.context == o.context

    def __hash__(self):
        return hash((self.type, self.node_id, self.context))

    def __repr__(self):
        return (f"ConfChange(type={_enum_name(ConfChangeType, self.type)}, "
                f"node_id={self.node_id}, context={self.context!r})")

    def __reduce__(self):
        return (ConfChange, (self.type, self.node_id, self.context))


@cython.final
cdef class ReadState:
    def __init__(self, uint64_t index=0, request_ctx=b""):
        self.index = index
        self.request_ctx = _as_bytes(request_ctx, "request_ctx")

    @staticmethod
    cdef ReadState new(uint64_t index, bytes request_ctx):
        cdef ReadState rs = ReadState.__new__(ReadState)
        rs.index = index
        rs.request_ctx = request_ctx
        return rs

    def __eq__(self, other):
        if not isinstance(other, ReadState):
            return NotImplemented
        cdef ReadState o = <ReadState>other
        return self.index == o.index and self.request_ctx == o.request_ctx

    def __hash__(self):
        return hash((self.index, self.request_ctx))

    def __repr__(self):
        return f"ReadState(index={self.index}, request_ctx={self.request_ctx!r})"


@cython.final
@cython.no_gc
@cython.freelist(256)
cdef class Message:
    def __init__(self, int type=MsgHup, uint64_t to=0, uint64_t frm=0, uint64_t term=0,
                 uint64_t log_term=0, uint64_t index=0, entries=None, uint64_t commit=0,
                 Snapshot snapshot=None, bint reject=False, uint64_t reject_hint=0,
                 context=b""):
        if type < 0 or type >= MSG_TYPE_COUNT:
            raise ValueError(f"raft: unknown message type {type}")
        self.type = <uint8_t>type
        self.to = to
        self.frm = frm
        self.term = term
        self.log_term = log_term
        self.index = index
        if entries is None:
            self._entries = None
        else:
            self._entries = list(entries)
            for e in self._entries:
                if not isinstance(e, Entry):
                    raise TypeError(f"raft: entries must be Entry, got {e.__class__.__name__}")
        self.commit = commit
        self.snapshot = snapshot
        self.reject = reject
        self.reject_hint = reject_hint
        self.context = _as_bytes(context, "context")

    @staticmethod
    cdef Message new(uint8_t type, uint64_t to, uint64_t frm, uint64_t term):
        cdef Message m = Message.__new__(Message)
        m.type = type
        m.to = to
        m.frm = frm
        m.term = term
        m.context = b""
        return m

    @property
    def entries(self):
        """list[Entry] carried by the message (created on first access)."""
        return msg_entries(self)

    @entries.setter
    def entries(self, value):
        if not isinstance(value, list):
            raise TypeError(f"raft: Message.entries must be a list, not {type(value).__name__}")
        self._entries = value

    @entries.deleter
    def entries(self):
        raise AttributeError("raft: Message.entries cannot be deleted (assign [] instead)")

    def __eq__(self, other):
        if not isinstance(other, Message):
            return NotImplemented
        cdef Message o = <Message>other
        return (self.type == o.type and self.to == o.to and self.frm == o.frm
                and self.term == o.term and self.log_term == o.log_term
                and self.index == o.index
                and msg_entry_count(self) == msg_entry_count(o)
                and (msg_entry_count(self) == 0 or self._entries == o._entries)
                and self.commit == o.commit and self.snapshot == o.snapshot
                and self.reject == o.reject and self.reject_hint == o.reject_hint
                and self.context == o.context)

    __hash__ = None

    def __repr__(self):
        parts = [f"type={_enum_name(MsgType, self.type)}", f"to={self.to}", f"frm={self.frm}",
                 f"term={self.term}"]
        if self.log_term or self.index:
            parts.append(f"log_term={self.log_term}, index={self.index}")
        if msg_entry_count(self):
            parts.append(f"entries=<{msg_entry_count(self)}>")
        if self.commit:
            parts.append(f"commit={self.commit}")
        if self.snapshot is not None:
            parts.append(f"snapshot={self.snapshot!r}")
        if self.reject:
            parts.append(f"reject=True, reject_hint={self.reject_hint}")
        if self.context:
            parts.append(f"context={self.context!r}")
        return "Message(" + ", ".join(parts) + ")"

    def __reduce__(self):
        return (Message, (self.type, self.to, self.frm, self.term, self.log_term, self.index,
                          self._entries, self.commit, self.snapshot, self.reject,
                          self.reject_hint, self.context))
