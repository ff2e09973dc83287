"""RawNode: drive a raft node through Ready/advance (etcd: rawnode.go).

The application loop, as in etcd's doc.go:

1. rd = rn.ready(); write rd.snapshot, rd.entries and rd.hard_state to
   stable storage (fsync when rd.must_sync);
2. send rd.messages;
3. apply rd.committed_entries (conf changes through apply_conf_change);
4. rn.advance(rd).

A RawNode is not thread-safe: one thread owns it.
"""
cimport cython
from cpython.list cimport PyList_GET_SIZE
from libc.stdint cimport uint64_t

from easyraft._core.types cimport (Message, Entry, HardState, SoftState, Snapshot, ConfChange,
                                   ConfState, is_local_msg, is_response_msg, NONE, EntryNormal,
                                   EntryConfChange, ConfChangeAddNode, MsgHup, MsgProp,
                                   MsgReadIndex, MsgTransferLeader, MsgUnreachable,
                                   MsgSnapStatus, StateLeader)
from easyraft._core.types import (ProposalDroppedError, StepLocalMsgError, StepPeerNotFoundError,
                                  RaftError, StateType)
from easyraft._core.raft cimport Raft, CoreConfig, CAMPAIGN_ELECTION
from easyraft._core.progress cimport Progress
from easyraft._core.storage cimport MemoryStorage

_PROGRESS_STATE_NAMES = ("probe", "replicate", "snapshot")


@cython.final
cdef class Ready:
    def __repr__(self):
        return (f"Ready(soft_state={self.soft_state!r}, hard_state={self.hard_state!r}, "
                f"entries=<{len(self.entries)}>, snapshot={self.snapshot!r}, "
                f"committed_entries=<{len(self.committed_entries)}>, "
                f"messages=<{len(self.messages)}>, read_states={self.read_states!r}, "
                f"must_sync={self.must_sync})")


class ProgressStatus:
    """A copy of one follower's replication progress (leader only)."""

    __slots__ = ("match", "next", "state", "recent_active", "is_learner", "paused", "inflight",
                 "pending_snapshot")

    def __init__(self, match, next, state, recent_active, is_learner, paused, inflight,
                 pending_snapshot):
        self.match = match
        self.next = next
        self.state = state
        self.recent_active = recent_active
        self.is_learner = is_learner
        self.paused = paused
        self.inflight = inflight
        self.pending_snapshot = pending_snapshot

    def __repr__(self):
        return (f"ProgressStatus(match={self.match}, next={self.next}, state={self.state!r}, "
                f"recent_active={self.recent_active}, is_learner={self.is_learner})")


class Status:
    """A snapshot of a node's state (etcd: status.go)."""

    __slots__ = ("id", "term", "vote", "commit", "lead", "raft_state", "applied",
                 "lead_transferee", "voters", "learners", "progress", "first_index", "last_index")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw[k])

    def as_dict(self):
        d = {k: getattr(self, k) for k in self.__slots__ if k != "progress"}
        d["raft_state"] = StateType(self.raft_state).name
        d["voters"] = list(self.voters)
        d["learners"] = list(self.learners)
        d["progress"] = {pid: {"match": p.match, "next": p.next, "state": p.state,
                               "recent_active": p.recent_active}
                         for pid, p in self.progress.items()}
        return d

    def __repr__(self):
        return f"Status({self.as_dict()!r})"


cdef inline bint _must_sync(HardState st, HardState prev, Py_ssize_t n_entries) noexcept:
    # Persistent state on all servers: currentTerm, votedFor, log entries[]
    # (Raft thesis Figure 3.1). A commit index change alone need not sync.
    return n_entries != 0 or st.vote != prev.vote or st.term != prev.term


@cython.final
cdef class RawNode:
    """A raft node driven by the application (thread-unsafe)."""

    def __cinit__(self, CoreConfig config not None):
        self.raft = Raft(config)
        self.prev_soft_st = self.raft.soft_state()
        self.prev_hard_st = self.raft.hard_state()

    def bootstrap(self, peers):
        """Initialize an empty log with the initial membership.

        `peers` holds voter ids, or (id, context) pairs whose context (e.g.
        the peer URL) is stored in the ConfChange. Like etcd, this writes
        one committed ConfChangeAddNode entry per peer at term 1; they show
        up in the next Ready as entries to persist and entries to apply.
        """
        cdef list ents = []
        cdef list ids = []
        cdef uint64_t i = 1
        cdef ConfChange cc
        cdef MemoryStorage storage = self.raft.raft_log.storage
        if not peers:
            raise ValueError("raft: must provide at least one peer to bootstrap")
        if storage.c_last_index() != 0:
            raise RaftError("raft: can't bootstrap a nonempty storage")
        for p in peers:
            if isinstance(p, tuple):
                pid, ctx = p
            else:
                pid, ctx = p, b""
            cc = ConfChange(ConfChangeAddNode, pid, ctx)
            if cc.node_id == NONE:
                raise ValueError("raft: peer id must be non-zero")
            if cc.node_id in ids:
                raise ValueError(f"raft: duplicate peer id {cc.node_id}")
            ids.append(cc.node_id)
            ents.append(Entry.new(1, i, EntryConfChange, cc.encode()))
            i += 1
        # The bootstrap entries must reach storage in the first Ready.
        self.prev_hard_st = HardState.new(0, 0, 0)
        self.raft.become_follower(1, NONE)
        self.raft.raft_log.append(ents)
        self.raft.raft_log.committed = len(ents)
        for pid in ids:
            self.raft.apply_conf_change(ConfChange.new(ConfChangeAddNode, pid, b""))

    def tick(self):
        """Advance the logical clock by one tick."""
        self.raft.tick()

    def campaign(self):
        """Start an election now (or a PreVote round when enabled)."""
        self.raft.step(Message.new(MsgHup, NONE, self.raft.id, 0))

    def propose(self, data):
        """Propose one entry. Raises ProposalDroppedError when refused."""
        cdef Message m = Message.new(MsgProp, NONE, self.raft.id, 0)
        m._entries = [Entry.new(0, 0, EntryNormal, _payload(data))]
        self.raft.step(m)

    def propose_batch(self, datas):
        """Propose several entries in one message (one MsgApp per follower
        instead of one per entry). All or none are accepted."""
        cdef Message m = Message.new(MsgProp, NONE, self.raft.id, 0)
        m._entries = [Entry.new(0, 0, EntryNormal, _payload(d)) for d in datas]
        if not m._entries:
            raise ValueError("raft: propose_batch needs at least one entry")
        self.raft.step(m)

    def propose_conf_change(self, ConfChange cc not None):
        """Propose a membership change. Only one may be pending at a time."""
        cdef Message m = Message.new(MsgProp, NONE, self.raft.id, 0)
        m._entries = [Entry.new(0, 0, EntryConfChange, cc.encode())]
        self.raft.step(m)

    def apply_conf_change(self, ConfChange cc not None):
        """Apply a committed conf change; returns the new ConfState."""
        return self.raft.apply_conf_change(cc)

    def step(self, Message m not None):
        """Feed a message received from a peer."""
        if is_local_msg(m.type):
            raise StepLocalMsgError("raft: cannot step raft local message")
        if self.raft.prs.get(m.frm) is not None or not is_response_msg(m.type):
            self.raft.step(m)
            return
        raise StepPeerNotFoundError("raft: cannot step as peer not found")

    def has_ready(self):
        """Whether ready() has anything for the application."""
        cdef Raft r = self.raft
        cdef HardState hs
        if r.lead != self.prev_soft_st.lead or r.state != self.prev_soft_st.raft_state:
            return True
        hs = r.hard_state()
        if not hs.is_empty() and not hs.same(self.prev_hard_st):
            return True
        if r.raft_log.has_pending_snapshot():
            return True
        if (PyList_GET_SIZE(r.msgs) or PyList_GET_SIZE(r.raft_log.unstable.entries)
                or r.raft_log.has_next_ents()):
            return True
        return PyList_GET_SIZE(r.read_states) != 0

    def ready(self):
        """Return what to persist, send and apply; call advance() after."""
        cdef Raft r = self.raft
        cdef Ready rd = Ready.__new__(Ready)
        cdef SoftState ss
        cdef HardState hs
        rd.entries = list(r.raft_log.unstable_entries())
        rd.committed_entries = r.raft_log.next_ents()
        rd.messages = r.msgs
        r.msgs = []
        if r.lead != self.prev_soft_st.lead or r.state != self.prev_soft_st.raft_state:
            ss = r.soft_state()
            rd.soft_state = ss
            self.prev_soft_st = ss
        hs = r.hard_state()
        if not hs.same(self.prev_hard_st):
            rd.hard_state = hs
        if r.raft_log.has_pending_snapshot():
            rd.snapshot = r.raft_log.unstable.snapshot
        rd.read_states = r.read_states
        if PyList_GET_SIZE(r.read_states):
            r.read_states = []
        rd.must_sync = _must_sync(hs, self.prev_hard_st, PyList_GET_SIZE(rd.entries))
        return rd

    def advance(self, Ready rd not None):
        """Tell the node that rd was persisted, sent and applied."""
        if rd.hard_state is not None and not rd.hard_state.is_empty():
            self.prev_hard_st = rd.hard_state
        self.raft.advance(rd.committed_entries, rd.entries, rd.snapshot)

    def transfer_leader(self, uint64_t transferee):
        """Ask the leader to hand leadership to transferee (thesis §3.10)."""
        self.raft.step(Message.new(MsgTransferLeader, NONE, transferee, 0))

    def read_index(self, rctx):
        """Request a linearizable read point; it arrives as a ReadState
        with request_ctx == rctx in a later Ready."""
        cdef Message m = Message.new(MsgReadIndex, NONE, NONE, 0)
        m._entries = [Entry.new(0, 0, EntryNormal, _payload(rctx))]
        self.raft.step(m)

    def report_unreachable(self, uint64_t id):
        """Report that the last message to `id` could not be delivered."""
        self.raft.step(Message.new(MsgUnreachable, NONE, id, 0))

    def report_snapshot(self, uint64_t id, bint ok=True):
        """Report the outcome of sending a snapshot to `id`."""
        cdef Message m = Message.new(MsgSnapStatus, NONE, id, 0)
        m.reject = not ok
        self.raft.step(m)

    def status(self):
        """Return a Status copy of this node's state."""
        cdef Raft r = self.raft
        cdef Progress pr
        progress = {}
        if r.state == StateLeader:
            for pid, pr in r.prs.progress.items():
                progress[pid] = ProgressStatus(pr.match, pr.next, _PROGRESS_STATE_NAMES[pr.state],
                                               pr.recent_active, pr.is_learner, pr.is_paused(),
                                               len(pr.inflights), pr.pending_snapshot)
        return Status(id=r.id, term=r.term, vote=r.vote, commit=r.raft_log.committed,
                      lead=r.lead, raft_state=r.state, applied=r.raft_log.applied,
                      lead_transferee=r.lead_transferee, voters=r.prs.voters,
                      learners=r.prs.learners, progress=progress,
                      first_index=r.raft_log.first_index(), last_index=r.raft_log.last_index())

    # Cheap accessors for the node loop and tests.
    @property
    def id(self):
        return self.raft.id

    @property
    def term(self):
        return self.raft.term

    @property
    def lead(self):
        return self.raft.lead

    @property
    def raft_state(self):
        return self.raft.state

    @property
    def committed(self):
        return self.raft.raft_log.committed

    @property
    def applied(self):
        return self.raft.raft_log.applied

    @property
    def last_index(self):
        return self.raft.raft_log.last_index()

    @property
    def pending_conf_index(self):
        return self.raft.pending_conf_index

    @property
    def conf_state(self):
        return self.raft.prs.conf_state()


cdef inline bytes _payload(object data):
    if isinstance(data, bytes):
        return <bytes>data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"raft: proposal data must be bytes, not {type(data).__name__}")
