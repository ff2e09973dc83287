"""The raft consensus state machine (etcd: raft.go).

Roles: follower, pre-candidate, candidate, leader (Raft thesis §3.3, §9.6
for PreVote). step() runs the term checks every role shares, then hands the
message to step_leader / step_candidate / step_follower. Nothing here does
I/O: outgoing messages accumulate in `msgs`, and the RawNode hands them,
with entries to persist and entries to apply, to the application in a Ready.

Deviations from etcd, all deliberate:
- no joint consensus (ConfChangeV2): one simple change at a time (§4.1);
- only ReadOnlySafe reads (no lease-based reads, which trust clocks);
- Entry objects are shared between the log and messages; the leader stamps
  term and index onto the entries of a MsgProp in place, as etcd does.
"""
cimport cython
from cpython.list cimport PyList_GET_SIZE, PyList_GET_ITEM
from cpython.bytes cimport PyBytes_GET_SIZE
from libc.stdint cimport uint64_t, UINT64_MAX

from easyraft._core.types cimport (Message, Entry, HardState, SoftState, ConfState, ConfChange,
                                   msg_entries, msg_entry_count,
                                   Snapshot, ReadState, empty_snapshot, vote_resp_type,
                                   NONE, EntryNormal, EntryConfChange,
                                   StateFollower, StateCandidate, StateLeader, StatePreCandidate,
                                   MsgHup, MsgBeat, MsgProp, MsgApp, MsgAppResp, MsgVote,
                                   MsgVoteResp, MsgSnap, MsgHeartbeat, MsgHeartbeatResp,
                                   MsgUnreachable, MsgSnapStatus, MsgCheckQuorum,
                                   MsgTransferLeader, MsgTimeoutNow, MsgReadIndex,
                                   MsgReadIndexResp, MsgPreVote, MsgPreVoteResp)
from easyraft._core.types import (ProposalDroppedError, RaftError, CompactedError, MsgType,
                                  StateType)
from easyraft._core.log cimport RaftLog
from easyraft._core.storage cimport MemoryStorage, TERM_OK, TERM_COMPACTED
from easyraft._core.progress cimport (Progress, ProgressTracker, StateProbe, StateReplicate,
                                      StateSnapshot)
from easyraft._core.quorum cimport VoteResult, VoteWon, VoteLost, VotePending
from easyraft._core.confchange cimport confchange_apply_simple, confchange_restore
from easyraft._core.read_only cimport ReadOnly, ReadIndexStatus

import logging

# Context of a MsgVote sent after MsgTimeoutNow: lets it through the
# leader-lease check of peers (thesis §3.10).
CAMPAIGN_TRANSFER_CTX = b"CampaignTransfer"
cdef bytes _CAMPAIGN_TRANSFER = CAMPAIGN_TRANSFER_CTX

_STATE_NAMES = {StateFollower: "follower", StateCandidate: "candidate",
                StateLeader: "leader", StatePreCandidate: "pre-candidate"}


cdef inline str _mt(int t):
    return MsgType(t).name


@cython.final
cdef class CoreConfig:
    """Parameters of one raft node (etcd: raft.Config).

    :param id: this node's id, non-zero, never reused.
    :param election_tick: ticks without hearing from a leader before a
        follower campaigns; must exceed heartbeat_tick (etcd suggests 10x).
    :param heartbeat_tick: ticks between leader heartbeats.
    :param storage: the MemoryStorage holding this node's log.
    :param applied: last index the application applied (on restart).
    :param max_size_per_msg: byte cap on the entries of one MsgApp (at least
        one entry is always sent).
    :param max_inflight_msgs: MsgApp in flight per follower when replicating.
    :param max_committed_size_per_ready: byte cap on committed entries per
        Ready (default: max_size_per_msg).
    :param max_uncommitted_entries_size: byte cap on proposed but uncommitted
        payloads on the leader; 0 = unlimited.
    :param pre_vote: run a PreVote round before campaigning (thesis §9.6).
    :param check_quorum: a leader steps down when a quorum is not heard
        from within an election timeout (thesis §6.2).
    :param seed: seeds the election-timeout randomization.
    :param logger: a logging.Logger-like object for cold-path events.
    """

    def __init__(self, uint64_t id=0, int election_tick=10, int heartbeat_tick=1, storage=None,
                 uint64_t applied=0, uint64_t max_size_per_msg=1 << 20,
                 Py_ssize_t max_inflight_msgs=256, max_committed_size_per_ready=None,
                 uint64_t max_uncommitted_entries_size=0, bint pre_vote=True,
                 bint check_quorum=True, bint disable_proposal_forwarding=False,
                 uint64_t seed=0, logger=None):
        if id == NONE:
            raise ValueError("raft: cannot use none as id")
        if heartbeat_tick <= 0:
            raise ValueError("raft: heartbeat tick must be greater than 0")
        if election_tick <= heartbeat_tick:
            raise ValueError("raft: election tick must be greater than heartbeat tick")
        if storage is None:
            raise ValueError("raft: storage cannot be nil")
        if not isinstance(storage, MemoryStorage):
            raise TypeError(f"raft: storage must be a MemoryStorage, got {type(storage).__name__}")
        if max_inflight_msgs <= 0:
            raise ValueError("raft: max inflight messages must be greater than 0")
        if max_size_per_msg == 0:
            raise ValueError("raft: max_size_per_msg must be greater than 0")
        self.id = id
        self.election_tick = election_tick
        self.heartbeat_tick = heartbeat_tick
        self.storage = storage
        self.applied = applied
        self.max_size_per_msg = max_size_per_msg
        self.max_inflight_msgs = max_inflight_msgs
        if max_committed_size_per_ready is None:
            self.max_committed_size_per_ready = max_size_per_msg
        else:
            if max_committed_size_per_ready <= 0:
                raise ValueError("raft: max_committed_size_per_ready must be greater than 0")
            self.max_committed_size_per_ready = max_committed_size_per_ready
        self.max_uncommitted_entries_size = max_uncommitted_entries_size
        self.pre_vote = pre_vote
        self.check_quorum = check_quorum
        self.disable_proposal_forwarding = disable_proposal_forwarding
        self.seed = seed
        self.logger = logger if logger is not None else logging.getLogger("easyraft.raft")


cdef inline Py_ssize_t _payload_size(list ents) noexcept:
    cdef Py_ssize_t i, s = 0
    for i in range(PyList_GET_SIZE(ents)):
        s += PyBytes_GET_SIZE((<Entry>PyList_GET_ITEM(ents, i)).data)
    return s


cdef inline Py_ssize_t _num_pending_conf(list ents) noexcept:
    cdef Py_ssize_t i, n = 0
    for i in range(PyList_GET_SIZE(ents)):
        if (<Entry>PyList_GET_ITEM(ents, i)).type == EntryConfChange:
            n += 1
    return n


@cython.final
cdef class Raft:
    def __cinit__(self, CoreConfig c not None):
        cdef MemoryStorage storage = <MemoryStorage>c.storage
        cdef HardState hs
        cdef ConfState cs
        self.id = c.id
        self.raft_log = RaftLog(storage, c.max_committed_size_per_ready)
        self.prs = ProgressTracker(c.max_inflight_msgs)
        self.max_msg_size = c.max_size_per_msg
        self.max_uncommitted_size = c.max_uncommitted_entries_size if c.max_uncommitted_entries_size else UINT64_MAX
        self.msgs = []
        self.read_states = []
        self.pending_read_index_messages = []
        self.election_timeout = c.election_tick
        self.heartbeat_timeout = c.heartbeat_tick
        self.check_quorum = c.check_quorum
        self.pre_vote = c.pre_vote
        self.disable_proposal_forwarding = c.disable_proposal_forwarding
        self.read_only = ReadOnly()
        self.logger = c.logger
        # Distinct streams per node even when every node gets the same seed.
        self.rng_state = c.seed * <uint64_t>0x9E3779B97F4A7C15 + c.id
        hs, cs = storage.initial_state()
        confchange_restore(self.prs, cs, self.raft_log.last_index())
        self.is_learner = c.id in cs.learners
        if not hs.is_empty():
            self.load_state(hs)
        if c.applied > 0:
            self.raft_log.applied_to(c.applied)
        self.become_follower(self.term, NONE)
        self.logger.info("newRaft %d [peers: %s, term: %d, commit: %d, applied: %d, "
                         "lastindex: %d, lastterm: %d]", self.id, list(cs.voters), self.term,
                         self.raft_log.committed, self.raft_log.applied,
                         self.raft_log.last_index(), self.raft_log.last_term())

    # --- small helpers -------------------------------------------------

    cdef uint64_t rand_next(self) noexcept:
        # splitmix64: tiny, fast, and good enough to spread timeouts.
        cdef uint64_t z
        self.rng_state += <uint64_t>0x9E3779B97F4A7C15
        z = self.rng_state
        z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
        return z ^ (z >> 31)

    cdef SoftState soft_state(self):
        return SoftState.new(self.lead, self.state)

    cdef HardState hard_state(self):
        return HardState.new(self.term, self.vote, self.raft_log.committed)

    cdef bint has_leader(self) noexcept:
        return self.lead != NONE

    cdef int load_state(self, HardState hs) except -1:
        if hs.commit < self.raft_log.committed or hs.commit > self.raft_log.last_index():
            raise RaftError(f"raft: {self.id} state.commit {hs.commit} is out of range "
                            f"[{self.raft_log.committed}, {self.raft_log.last_index()}]")
        self.raft_log.committed = hs.commit
        self.term = hs.term
        self.vote = hs.vote
        return 0

    cdef bint past_election_timeout(self) noexcept:
        return self.election_elapsed >= self.randomized_election_timeout

    cdef void reset_randomized_election_timeout(self) noexcept:
        self.randomized_election_timeout = self.election_timeout + <int>(
            self.rand_next() % <uint64_t>self.election_timeout)

    cdef bint promotable(self) except -1:
        # A node can campaign if it is a voter and has no snapshot pending.
        cdef Progress pr = self.prs.get(self.id)
        return pr is not None and not pr.is_learner and not self.raft_log.has_pending_snapshot()

    # --- sending -------------------------------------------------------

    cdef int send(self, Message m) except -1:
        if m.frm == NONE:
            m.frm = self.id
        if (m.type == MsgVote or m.type == MsgVoteResp or m.type == MsgPreVote
                or m.type == MsgPreVoteResp):
            # Vote messages carry the term they are for, which for PreVote
            # is a future term; it must be set by the caller.
            if m.term == 0:
                raise RaftError(f"raft: term should be set when sending {_mt(m.type)}")
        else:
            if m.term != 0:
                raise RaftError(f"raft: term should not be set when sending {_mt(m.type)} "
                                f"(was {m.term})")
            # Proposals and read requests forwarded to the leader are local
            # messages without a term.
            if m.type != MsgProp and m.type != MsgReadIndex:
                m.term = self.term
        self.msgs.append(m)
        return 0

    cdef int send_append(self, uint64_t to) except -1:
        self.maybe_send_append(to, True)
        return 0

    cdef bint maybe_send_append(self, uint64_t to, bint send_if_empty) except -1:
        # Send what `to` is missing: entries from pr.next, or a snapshot when
        # those are compacted away. Returns whether a message was sent.
        cdef Progress pr = self.prs.get(to)
        cdef Message m
        cdef uint64_t term = 0, last
        cdef int rc
        cdef list ents = None
        cdef bint need_snapshot = False
        cdef Snapshot snap
        cdef Py_ssize_t n
        if pr is None or pr.is_paused():
            return False
        rc = self.raft_log.term_of(pr.next - 1, &term)
        if rc == TERM_OK:
            try:
                ents = self.raft_log.entries(pr.next, self.max_msg_size)
            except CompactedError:
                need_snapshot = True
        else:
            need_snapshot = True
        if not need_snapshot and PyList_GET_SIZE(ents) == 0 and not send_if_empty:
            return False
        if need_snapshot:
            if not pr.recent_active:
                self.logger.debug("ignore sending snapshot to %d since it is not recently active", to)
                return False
            snap = self.raft_log.snapshot()
            if snap.is_empty():
                raise RaftError("raft: need non-empty snapshot")
            m = Message.new(MsgSnap, to, NONE, 0)
            m.snapshot = snap
            self.logger.debug("%d [firstindex: %d, commit: %d] sent snapshot[index: %d, term: %d] "
                              "to %d [%r]", self.id, self.raft_log.first_index(),
                              self.raft_log.committed, snap.metadata.index, snap.metadata.term,
                              to, pr)
            pr.become_snapshot(snap.metadata.index)
        else:
            m = Message.new(MsgApp, to, NONE, 0)
            m.index = pr.next - 1
            m.log_term = term
            m._entries = ents
            m.commit = self.raft_log.committed
            n = PyList_GET_SIZE(ents)
            if n != 0:
                if pr.state == StateReplicate:
                    # Optimistically assume the follower takes them (§3.5 pipelining).
                    last = (<Entry>PyList_GET_ITEM(ents, n - 1)).index
                    pr.optimistic_update(last)
                    pr.inflights.add(last)
                elif pr.state == StateProbe:
                    pr.probe_sent = True
                else:
                    raise RaftError(f"raft: {self.id} is sending append in unhandled state {pr.state}")
        self.send(m)
        return True

    cdef int send_heartbeat(self, uint64_t to, bytes ctx) except -1:
        # Attach min(match, committed): the follower may not have the
        # leader's committed entries yet and must not commit past its log.
        cdef Progress pr = self.prs.get(to)
        cdef Message m = Message.new(MsgHeartbeat, to, NONE, 0)
        m.commit = min(pr.match, self.raft_log.committed)
        if ctx is not None:
            m.context = ctx
        self.send(m)
        return 0

    cdef int bcast_append(self) except -1:
        for id in self.prs.progress:
            if id != self.id:
                self.send_append(id)
        return 0

    cdef int bcast_heartbeat(self) except -1:
        self.bcast_heartbeat_with_ctx(self.read_only.last_pending_request_ctx())
        return 0

    cdef int bcast_heartbeat_with_ctx(self, bytes ctx) except -1:
        for id in self.prs.progress:
            if id != self.id:
                self.send_heartbeat(id, ctx)
        return 0

    # --- log bookkeeping -----------------------------------------------

    cdef int advance(self, list committed_entries, list entries, Snapshot snap) except -1:
        # The application applied committed_entries and persisted entries/snap.
        cdef Py_ssize_t n
        cdef uint64_t new_applied = 0
        cdef Entry e
        self.reduce_uncommitted_size(committed_entries)
        n = PyList_GET_SIZE(committed_entries)
        if n:
            new_applied = (<Entry>PyList_GET_ITEM(committed_entries, n - 1)).index
        elif snap is not None:
            new_applied = snap.metadata.index
        if new_applied > 0:
            self.raft_log.applied_to(new_applied)
        n = PyList_GET_SIZE(entries)
        if n:
            e = <Entry>PyList_GET_ITEM(entries, n - 1)
            self.raft_log.stable_to(e.index, e.term)
        if snap is not None:
            self.raft_log.stable_snap_to(snap.metadata.index)
        return 0

    cdef bint maybe_commit(self) except -1:
        return self.raft_log.maybe_commit(self.prs.committed(), self.term)

    cdef int reset(self, uint64_t term) except -1:
        cdef uint64_t last = self.raft_log.last_index()
        cdef Progress pr, old
        cdef dict fresh = {}
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.reset_randomized_election_timeout()
        self.abort_leader_transfer()
        self.prs.reset_votes()
        for id, old in self.prs.progress.items():
            pr = Progress(0, last + 1, self.prs.max_inflight, old.is_learner)
            if id == self.id:
                pr.match = last
            fresh[id] = pr
        self.prs.progress = fresh
        self.pending_conf_index = 0
        self.uncommitted_size = 0
        self.read_only = ReadOnly()
        return 0

    cdef bint append_entry(self, list es) except -1:
        # Stamp the entries with our term and the next positions, then count
        # our own copy towards commit.
        cdef uint64_t li = self.raft_log.last_index()
        cdef Py_ssize_t i, n = PyList_GET_SIZE(es)
        cdef Entry e
        for i in range(n):
            e = <Entry>PyList_GET_ITEM(es, i)
            e.term = self.term
            e.index = li + 1 + <uint64_t>i
        if not self.increase_uncommitted_size(es):
            self.logger.debug("%d appending new entries to log would exceed uncommitted entry "
                              "size limit; dropping proposal", self.id)
            return False
        li = self.raft_log.append(es)
        self.prs.get(self.id).maybe_update(li)
        # Regardless of maybe_commit's result, our caller broadcasts.
        self.maybe_commit()
        return True

    cdef bint increase_uncommitted_size(self, list ents) noexcept:
        cdef uint64_t s = <uint64_t>_payload_size(ents)
        # Always admit a proposal when nothing is outstanding, so that a
        # single large entry cannot wedge the leader.
        if self.uncommitted_size > 0 and s > 0 and self.uncommitted_size + s > self.max_uncommitted_size:
            return False
        self.uncommitted_size += s
        return True

    cdef void reduce_uncommitted_size(self, list ents) noexcept:
        cdef uint64_t s
        if self.uncommitted_size == 0:
            return
        s = <uint64_t>_payload_size(ents)
        if s > self.uncommitted_size:
            self.uncommitted_size = 0
        else:
            self.uncommitted_size -= s

    # --- ticks ---------------------------------------------------------

    cdef int tick(self) except -1:
        if self.state == StateLeader:
            return self.tick_heartbeat()
        return self.tick_election()

    cdef int tick_election(self) except -1:
        # Followers and candidates: start an election when the randomized
        # timeout passes without hearing from a leader (thesis §3.4).
        cdef Message m
        self.election_elapsed += 1
        if self.promotable() and self.past_election_timeout():
            self.election_elapsed = 0
            m = Message.new(MsgHup, NONE, self.id, 0)
            self.step(m)
        return 0

    cdef int tick_heartbeat(self) except -1:
        cdef Message m
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.check_quorum:
                m = Message.new(MsgCheckQuorum, NONE, self.id, 0)
                self.step(m)
            # A transfer that did not finish within an election timeout is abandoned.
            if self.state == StateLeader and self.lead_transferee != NONE:
                self.abort_leader_transfer()
        if self.state != StateLeader:
            return 0
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            m = Message.new(MsgBeat, NONE, self.id, 0)
            self.step(m)
        return 0

    # --- role transitions ----------------------------------------------

    cdef int become_follower(self, uint64_t term, uint64_t lead) except -1:
        self.reset(term)
        self.lead = lead
        self.state = StateFollower
        self.logger.info("%d became follower at term %d", self.id, self.term)
        return 0

    cdef int become_candidate(self) except -1:
        if self.state == StateLeader:
            raise RaftError("raft: invalid transition [leader -> candidate]")
        self.reset(self.term + 1)
        self.vote = self.id
        self.state = StateCandidate
        self.logger.info("%d became candidate at term %d", self.id, self.term)
        return 0

    cdef int become_pre_candidate(self) except -1:
        # PreVote (thesis §9.6): neither the term nor the vote changes, so a
        # node that cannot win does not disrupt the cluster.
        if self.state == StateLeader:
            raise RaftError("raft: invalid transition [leader -> pre-candidate]")
        self.prs.reset_votes()
        self.lead = NONE
        self.state = StatePreCandidate
        self.logger.info("%d became pre-candidate at term %d", self.id, self.term)
        return 0

    cdef int become_leader(self) except -1:
        cdef Entry empty
        if self.state == StateFollower:
            raise RaftError("raft: invalid transition [follower -> leader]")
        self.reset(self.term)
        self.lead = self.id
        self.state = StateLeader
        # We know our own log matches up to last index.
        self.prs.get(self.id).become_replicate()
        # Conservatively treat any unapplied entry as a pending conf change:
        # we cannot see whether one is still in flight.
        self.pending_conf_index = self.raft_log.last_index()
        # An empty entry of our term commits everything before it (thesis §3.6.2, §6.4).
        empty = Entry.new(0, 0, EntryNormal, b"")
        if not self.append_entry([empty]):
            raise RaftError("raft: empty entry was dropped")
        # The empty entry does not count against the uncommitted size.
        self.uncommitted_size = 0
        self.logger.info("%d became leader at term %d", self.id, self.term)
        return 0

    # --- elections -----------------------------------------------------

    cdef int hup(self, int t) except -1:
        cdef list ents
        if self.state == StateLeader:
            self.logger.debug("%d ignoring MsgHup because already leader", self.id)
            return 0
        if not self.promotable():
            self.logger.warning("%d is unpromotable and can not campaign", self.id)
            return 0
        # An unapplied conf change might remove us or change the quorum:
        # do not campaign until it is applied.
        if self.raft_log.committed > self.raft_log.applied:
            try:
                ents = self.raft_log.slice(self.raft_log.applied + 1, self.raft_log.committed + 1,
                                           UINT64_MAX)
            except RaftError as err:
                raise RaftError(f"raft: unexpected error getting unapplied entries ({err})")
            if _num_pending_conf(ents):
                self.logger.warning("%d cannot campaign at term %d since there are still "
                                    "pending configuration changes to apply", self.id, self.term)
                return 0
        self.logger.info("%d is starting a new election at term %d", self.id, self.term)
        self.campaign(t)
        return 0

    cdef int campaign(self, int t) except -1:
        cdef int vote_msg
        cdef uint64_t term
        cdef Message m
        if t == CAMPAIGN_PRE_ELECTION:
            self.become_pre_candidate()
            vote_msg = MsgPreVote
            # PreVote RPCs are sent for the next term before we've incremented self.term.
            term = self.term + 1
        else:
            self.become_candidate()
            vote_msg = MsgVote
            term = self.term
        if self.poll(self.id, vote_resp_type(vote_msg), True) == VoteWon:
            # Single-node cluster: we won by voting for ourselves.
            if t == CAMPAIGN_PRE_ELECTION:
                self.campaign(CAMPAIGN_ELECTION)
            else:
                self.become_leader()
            return 0
        for id in self.prs.voters:
            if id == self.id:
                continue
            self.logger.info("%d [logterm: %d, index: %d] sent %s request to %d at term %d",
                             self.id, self.raft_log.last_term(), self.raft_log.last_index(),
                             _mt(vote_msg), id, self.term)
            m = Message.new(vote_msg, id, NONE, term)
            m.index = self.raft_log.last_index()
            m.log_term = self.raft_log.last_term()
            if t == CAMPAIGN_TRANSFER:
                m.context = _CAMPAIGN_TRANSFER
            self.send(m)
        return 0

    cdef int poll(self, uint64_t id, int t, bint v) except -1:
        cdef Py_ssize_t granted = 0, rejected = 0
        if v:
            self.logger.info("%d received %s from %d at term %d", self.id, _mt(t), id, self.term)
        else:
            self.logger.info("%d received %s rejection from %d at term %d", self.id, _mt(t), id,
                             self.term)
        self.prs.record_vote(id, v)
        return self.prs.tally_votes(&granted, &rejected)

    # --- step ----------------------------------------------------------

    cdef int step(self, Message m) except -1:
        cdef bint force, in_lease, can_vote
        cdef Message resp
        # Handle the message term, which may result in our stepping down.
        if m.term == 0:
            pass   # local message
        elif m.term > self.term:
            if m.type == MsgVote or m.type == MsgPreVote:
                force = m.context == _CAMPAIGN_TRANSFER
                in_lease = (self.check_quorum and self.lead != NONE
                            and self.election_elapsed < self.election_timeout)
                if not force and in_lease:
                    # We heard from a leader within the minimum election
                    # timeout: ignore the vote so a partitioned node that
                    # rejoins cannot depose a working leader (thesis §4.2.3).
                    self.logger.info("%d [logterm: %d, index: %d, vote: %d] ignored %s from %d "
                                     "[logterm: %d, index: %d] at term %d: lease is not expired "
                                     "(remaining ticks: %d)", self.id, self.raft_log.last_term(),
                                     self.raft_log.last_index(), self.vote, _mt(m.type), m.frm,
                                     m.log_term, m.index, self.term,
                                     self.election_timeout - self.election_elapsed)
                    return 0
            if m.type == MsgPreVote:
                pass   # never change our term in response to a PreVote
            elif m.type == MsgPreVoteResp and not m.reject:
                # We send pre-votes with a future term; on a quorum of
                # grants we campaign and bump the term then.
                pass
            else:
                self.logger.info("%d [term: %d] received a %s message with higher term from %d "
                                 "[term: %d]", self.id, self.term, _mt(m.type), m.frm, m.term)
                if m.type == MsgApp or m.type == MsgHeartbeat or m.type == MsgSnap:
                    self.become_follower(m.term, m.frm)
                else:
                    self.become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.check_quorum or self.pre_vote) and (m.type == MsgHeartbeat or m.type == MsgApp):
                # A stale leader (e.g. one that was partitioned) learns our
                # term from this response and steps down; without it, with
                # CheckQuorum/PreVote we would ignore it and it would never
                # find out (etcd #5451).
                resp = Message.new(MsgAppResp, m.frm, NONE, 0)
                self.send(resp)
            elif m.type == MsgPreVote:
                # Reject so that a pre-candidate with a lower term learns of
                # ours and does not wait forever (etcd #8501).
                self.logger.info("%d [logterm: %d, index: %d, vote: %d] rejected %s from %d "
                                 "[logterm: %d, index: %d] at term %d", self.id,
                                 self.raft_log.last_term(), self.raft_log.last_index(), self.vote,
                                 _mt(m.type), m.frm, m.log_term, m.index, self.term)
                resp = Message.new(MsgPreVoteResp, m.frm, NONE, self.term)
                resp.reject = True
                self.send(resp)
            else:
                self.logger.debug("%d [term: %d] ignored a %s message with lower term from %d "
                                  "[term: %d]", self.id, self.term, _mt(m.type), m.frm, m.term)
            return 0

        if m.type == MsgHup:
            if self.pre_vote:
                self.hup(CAMPAIGN_PRE_ELECTION)
            else:
                self.hup(CAMPAIGN_ELECTION)
        elif m.type == MsgVote or m.type == MsgPreVote:
            # We can vote if this is a repeat of a vote we already cast, or
            # we have not voted and know no leader this term, or this is a
            # PreVote for a future term (thesis §3.4, §9.6).
            can_vote = (self.vote == m.frm
                        or (self.vote == NONE and self.lead == NONE)
                        or (m.type == MsgPreVote and m.term > self.term))
            if can_vote and self.raft_log.is_up_to_date(m.index, m.log_term):
                self.logger.info("%d [logterm: %d, index: %d, vote: %d] cast %s for %d "
                                 "[logterm: %d, index: %d] at term %d", self.id,
                                 self.raft_log.last_term(), self.raft_log.last_index(), self.vote,
                                 _mt(m.type), m.frm, m.log_term, m.index, self.term)
                # Reply with the message's term: for PreVote it is a future
                # term the candidate is probing, ours would be stale.
                resp = Message.new(vote_resp_type(m.type), m.frm, NONE, m.term)
                self.send(resp)
                if m.type == MsgVote:
                    # Only record real votes.
                    self.election_elapsed = 0
                    self.vote = m.frm
            else:
                self.logger.info("%d [logterm: %d, index: %d, vote: %d] rejected %s from %d "
                                 "[logterm: %d, index: %d] at term %d", self.id,
                                 self.raft_log.last_term(), self.raft_log.last_index(), self.vote,
                                 _mt(m.type), m.frm, m.log_term, m.index, self.term)
                resp = Message.new(vote_resp_type(m.type), m.frm, NONE, self.term)
                resp.reject = True
                self.send(resp)
        elif self.state == StateLeader:
            return self.step_leader(m)
        elif self.state == StateFollower:
            return self.step_follower(m)
        else:
            return self.step_candidate(m)
        return 0

    cdef int step_leader(self, Message m) except -1:
        cdef Progress pr
        cdef Py_ssize_t i, n
        cdef Entry e
        cdef bint already_pending, old_paused
        cdef str refused
        cdef uint64_t next_probe_idx, lead_transferee
        cdef dict acks
        cdef ReadIndexStatus rs
        cdef Message resp
        cdef ConfChange cc

        if m.type == MsgBeat:
            self.bcast_heartbeat()
            return 0
        if m.type == MsgCheckQuorum:
            pr = self.prs.get(self.id)
            if pr is not None:
                # We count ourselves as active (we may have been removed).
                pr.recent_active = True
            if not self.prs.quorum_active():
                self.logger.warning("%d stepped down to follower since quorum is not active", self.id)
                self.become_follower(self.term, NONE)
            # Mark everyone but us inactive for the next round.
            for id, pr in self.prs.progress.items():
                if id != self.id:
                    pr.recent_active = False
            return 0
        if m.type == MsgProp:
            n = msg_entry_count(m)
            if n == 0:
                raise RaftError(f"raft: {self.id} stepped empty MsgProp")
            if self.prs.get(self.id) is None:
                # We were removed from the configuration while serving as
                # leader: drop proposals.
                raise ProposalDroppedError("raft: proposal dropped (this leader was removed)")
            if self.lead_transferee != NONE:
                self.logger.debug("%d [term %d] transfer leadership to %d is in progress; "
                                  "dropping proposal", self.id, self.term, self.lead_transferee)
                raise ProposalDroppedError("raft: proposal dropped (leadership transfer in progress)")
            for i in range(n):
                e = <Entry>PyList_GET_ITEM(m._entries, i)
                if e.type != EntryConfChange:
                    continue
                refused = None
                try:
                    cc = ConfChange.decode(e.data)
                except RaftError as err:
                    refused = f"malformed conf change ({err})"
                if refused is None and self.pending_conf_index > self.raft_log.applied:
                    # One change at a time (thesis §4.1).
                    refused = (f"possible unapplied conf change at index "
                               f"{self.pending_conf_index} (applied to {self.raft_log.applied})")
                if refused is not None:
                    self.logger.info("%d ignoring conf change %r at config %r: %s", self.id,
                                     e.data[:64], self.prs.conf_state(), refused)
                    if m.frm == self.id and n == 1:
                        # Our own caller: tell it rather than commit a no-op.
                        raise ProposalDroppedError(f"raft: conf change refused: {refused}")
                    m._entries[i] = Entry.new(0, 0, EntryNormal, b"")
                else:
                    self.pending_conf_index = self.raft_log.last_index() + <uint64_t>i + 1
            if not self.append_entry(m._entries):
                raise ProposalDroppedError("raft: proposal dropped (uncommitted size limit)")
            self.bcast_append()
            return 0
        if m.type == MsgReadIndex:
            if msg_entry_count(m) != 1:
                # The request context travels as the only entry; anything
                # else came from a broken or hostile peer.
                self.logger.warning("%d dropping MsgReadIndex from %d with %d entries "
                                    "(want 1)", self.id, m.frm, msg_entry_count(m))
                return 0
            if self.prs.is_singleton():
                resp = self.response_to_read_index_req(m, self.raft_log.committed)
                if resp is not None:
                    self.send(resp)
                return 0
            # Postpone until our first entry commits: before that we do not
            # know the true commit index (thesis §6.4).
            if not self.committed_entry_in_current_term():
                self.pending_read_index_messages.append(m)
                return 0
            self.send_read_index_response(m)
            return 0

        # All other message types require a progress for m.frm.
        pr = self.prs.get(m.frm)
        if pr is None:
            self.logger.debug("%d no progress available for %d", self.id, m.frm)
            return 0
        if m.type == MsgAppResp:
            pr.recent_active = True
            if m.reject:
                # The follower's log does not match at m.index. Its hint
                # (m.reject_hint, m.log_term) lets us skip every entry of a
                # conflicting term in one round trip.
                self.logger.debug("%d received MsgAppResp(rejected, hint: (index %d, term %d)) "
                                  "from %d for index %d", self.id, m.reject_hint, m.log_term,
                                  m.frm, m.index)
                next_probe_idx = m.reject_hint
                if m.log_term > 0:
                    next_probe_idx = self.raft_log.find_conflict_by_term(m.reject_hint, m.log_term)
                if pr.maybe_decr_to(m.index, next_probe_idx):
                    if pr.state == StateReplicate:
                        pr.become_probe()
                    self.send_append(m.frm)
            else:
                old_paused = pr.is_paused()
                if pr.maybe_update(m.index):
                    if pr.state == StateProbe:
                        pr.become_replicate()
                    elif pr.state == StateSnapshot and pr.match >= pr.pending_snapshot:
                        # The snapshot is in; resume replication after it.
                        pr.become_probe()
                        pr.become_replicate()
                    elif pr.state == StateReplicate:
                        pr.inflights.free_le(m.index)
                    if self.maybe_commit():
                        self.release_pending_read_index_messages()
                        self.bcast_append()
                    elif old_paused:
                        # The follower was paused and is not any more: it
                        # may be missing entries or the latest commit index.
                        self.send_append(m.frm)
                    # Send as much as the window allows, but not empty
                    # appends: those only cost bandwidth.
                    while self.maybe_send_append(m.frm, False):
                        pass
                    # Transfer leadership once the transferee is caught up.
                    if m.frm == self.lead_transferee and pr.match == self.raft_log.last_index():
                        self.logger.info("%d sent MsgTimeoutNow to %d after received MsgAppResp",
                                         self.id, m.frm)
                        self.send_timeout_now(m.frm)
        elif m.type == MsgHeartbeatResp:
            pr.recent_active = True
            pr.probe_sent = False
            # Free one slot for the full inflights so replication can go on.
            if pr.state == StateReplicate and pr.inflights.full():
                pr.inflights.free_first_one()
            if pr.match < self.raft_log.last_index():
                self.send_append(m.frm)
            if PyBytes_GET_SIZE(m.context) == 0:
                return 0
            acks = self.read_only.recv_ack(m.frm, m.context)
            if acks is None or self.prs.vote_result_of(acks) != VoteWon:
                return 0
            for rs in self.read_only.advance(m):
                resp = self.response_to_read_index_req(rs.req, rs.index)
                if resp is not None:
                    self.send(resp)
        elif m.type == MsgSnapStatus:
            if pr.state != StateSnapshot:
                return 0
            if not m.reject:
                pr.become_probe()
                self.logger.debug("%d snapshot succeeded, resumed sending replication messages "
                                  "to %d [%r]", self.id, m.frm, pr)
            else:
                # The snapshot failed: retry with a fresh one later.
                pr.pending_snapshot = 0
                pr.become_probe()
                self.logger.debug("%d snapshot failed, resumed sending replication messages "
                                  "to %d [%r]", self.id, m.frm, pr)
            # Wait for a MsgHeartbeatResp or MsgAppResp before probing again:
            # the snapshot may still be being applied.
            pr.probe_sent = True
        elif m.type == MsgUnreachable:
            # The follower may have dropped our MsgApp: probe again.
            if pr.state == StateReplicate:
                pr.become_probe()
            self.logger.debug("%d failed to send message to %d because it is unreachable [%r]",
                              self.id, m.frm, pr)
        elif m.type == MsgTransferLeader:
            if pr.is_learner:
                self.logger.debug("%d is learner. Ignored transferring leadership", m.frm)
                return 0
            lead_transferee = m.frm
            if self.lead_transferee != NONE:
                if self.lead_transferee == lead_transferee:
                    self.logger.info("%d [term %d] transfer leadership to %d is in progress, "
                                     "ignores request to same node %d", self.id, self.term,
                                     lead_transferee, lead_transferee)
                    return 0
                self.abort_leader_transfer()
                self.logger.info("%d [term %d] abort previous transferring leadership to %d",
                                 self.id, self.term, self.lead_transferee)
            if lead_transferee == self.id:
                self.logger.debug("%d is already leader. Ignored transferring leadership to self",
                                  self.id)
                return 0
            self.logger.info("%d [term %d] starts to transfer leadership to %d", self.id,
                             self.term, lead_transferee)
            # Transfer must finish within one election timeout (thesis §3.10).
            self.election_elapsed = 0
            self.lead_transferee = lead_transferee
            if pr.match == self.raft_log.last_index():
                self.send_timeout_now(lead_transferee)
                self.logger.info("%d sends MsgTimeoutNow to %d immediately as %d already has "
                                 "up-to-date log", self.id, lead_transferee, lead_transferee)
            else:
                self.send_append(lead_transferee)
        return 0

    cdef int step_candidate(self, Message m) except -1:
        # Candidates and pre-candidates share this; only responses for our
        # own kind of election count.
        cdef int my_vote_resp = MsgPreVoteResp if self.state == StatePreCandidate else MsgVoteResp
        cdef int res
        if m.type == MsgProp:
            self.logger.info("%d no leader at term %d; dropping proposal", self.id, self.term)
            raise ProposalDroppedError("raft: proposal dropped (no leader)")
        elif m.type == MsgApp:
            self.become_follower(m.term, m.frm)   # always m.term == self.term
            self.handle_append_entries(m)
        elif m.type == MsgHeartbeat:
            self.become_follower(m.term, m.frm)
            self.handle_heartbeat(m)
        elif m.type == MsgSnap:
            self.become_follower(m.term, m.frm)
            self.handle_snapshot(m)
        elif m.type == my_vote_resp:
            res = self.poll(m.frm, m.type, not m.reject)
            if res == VoteWon:
                if self.state == StatePreCandidate:
                    self.campaign(CAMPAIGN_ELECTION)
                else:
                    self.become_leader()
                    self.bcast_append()
            elif res == VoteLost:
                # pb.MsgPreVoteResp contains future term of pre-candidate;
                # m.term > self.term, so stay at our term.
                self.become_follower(self.term, NONE)
        elif m.type == MsgTimeoutNow:
            self.logger.debug("%d [term %d state %s] ignored MsgTimeoutNow from %d", self.id,
                              self.term, _STATE_NAMES[self.state], m.frm)
        return 0

    cdef int step_follower(self, Message m) except -1:
        cdef ReadState rs
        if m.type == MsgProp:
            if self.lead == NONE:
                self.logger.info("%d no leader at term %d; dropping proposal", self.id, self.term)
                raise ProposalDroppedError("raft: proposal dropped (no leader)")
            if self.disable_proposal_forwarding:
                self.logger.info("%d not forwarding to leader %d at term %d; dropping proposal",
                                 self.id, self.lead, self.term)
                raise ProposalDroppedError("raft: proposal dropped (forwarding disabled)")
            m.to = self.lead
            self.send(m)
        elif m.type == MsgApp:
            self.election_elapsed = 0
            self.lead = m.frm
            self.handle_append_entries(m)
        elif m.type == MsgHeartbeat:
            self.election_elapsed = 0
            self.lead = m.frm
            self.handle_heartbeat(m)
        elif m.type == MsgSnap:
            self.election_elapsed = 0
            self.lead = m.frm
            self.handle_snapshot(m)
        elif m.type == MsgTransferLeader:
            if self.lead == NONE:
                self.logger.info("%d no leader at term %d; dropping leader transfer msg",
                                 self.id, self.term)
                return 0
            m.to = self.lead
            self.send(m)
        elif m.type == MsgTimeoutNow:
            # The leader asks us to campaign now, skipping PreVote: it is
            # stepping aside for us (thesis §3.10).
            self.logger.info("%d [term %d] received MsgTimeoutNow from %d and starts an "
                             "election to get leadership", self.id, self.term, m.frm)
            self.hup(CAMPAIGN_TRANSFER)
        elif m.type == MsgReadIndex:
            if self.lead == NONE:
                self.logger.info("%d no leader at term %d; dropping index reading msg",
                                 self.id, self.term)
                return 0
            m.to = self.lead
            self.send(m)
        elif m.type == MsgReadIndexResp:
            if msg_entry_count(m) != 1:
                self.logger.error("%d invalid format of MsgReadIndexResp from %d, entries "
                                  "count: %d", self.id, m.frm, msg_entry_count(m))
                return 0
            rs = ReadState.new(m.index, (<Entry>m._entries[0]).data)
            self.read_states.append(rs)
        return 0

    # --- handlers ------------------------------------------------------

    cdef int handle_append_entries(self, Message m) except -1:
        cdef Message resp
        cdef uint64_t last_new = 0, hint_index, hint_term = 0
        if m.index < self.raft_log.committed:
            # Everything up to our commit index is already in place.
            resp = Message.new(MsgAppResp, m.frm, NONE, 0)
            resp.index = self.raft_log.committed
            self.send(resp)
            return 0
        if self.raft_log.maybe_append(m.index, m.log_term, m.commit, msg_entries(m),
                                       &last_new):
            resp = Message.new(MsgAppResp, m.frm, NONE, 0)
            resp.index = last_new
            self.send(resp)
            return 0
        # Reject, with a hint: the largest index <= m.index whose term is
        # <= m.log_term. The leader resumes probing from there, skipping
        # every entry that cannot match.
        hint_index = min(m.index, self.raft_log.last_index())
        hint_index = self.raft_log.find_conflict_by_term(hint_index, m.log_term)
        self.raft_log.term_of(hint_index, &hint_term)
        self.logger.debug("%d [logterm: %d, index: %d] rejected MsgApp [logterm: %d, index: %d] "
                          "from %d", self.id, self.raft_log.zero_term(m.index), m.index,
                          m.log_term, m.index, m.frm)
        resp = Message.new(MsgAppResp, m.frm, NONE, 0)
        resp.index = m.index
        resp.reject = True
        resp.reject_hint = hint_index
        resp.log_term = hint_term
        self.send(resp)
        return 0

    cdef int handle_heartbeat(self, Message m) except -1:
        cdef Message resp
        self.raft_log.commit_to(m.commit)
        resp = Message.new(MsgHeartbeatResp, m.frm, NONE, 0)
        resp.context = m.context
        self.send(resp)
        return 0

    cdef int handle_snapshot(self, Message m) except -1:
        cdef Message resp = Message.new(MsgAppResp, m.frm, NONE, 0)
        cdef Snapshot s = m.snapshot
        if s is None:
            self.logger.warning("%d ignored MsgSnap without a snapshot from %d", self.id, m.frm)
            return 0
        if self.restore(s):
            self.logger.info("%d [commit: %d] restored snapshot [index: %d, term: %d]", self.id,
                             self.raft_log.committed, s.metadata.index, s.metadata.term)
            resp.index = self.raft_log.last_index()
        else:
            self.logger.info("%d [commit: %d] ignored snapshot [index: %d, term: %d]", self.id,
                             self.raft_log.committed, s.metadata.index, s.metadata.term)
            resp.index = self.raft_log.committed
        self.send(resp)
        return 0

    cdef bint restore(self, Snapshot s) except -1:
        # Recover from a snapshot; returns whether it was applied.
        cdef ConfState cs = s.metadata.conf_state
        cdef Progress pr
        if s.metadata.index <= self.raft_log.committed:
            return False
        if self.state != StateFollower:
            # Defense in depth: only a follower gets snapshots from a leader.
            self.logger.warning("%d attempted to restore snapshot as leader; should never happen",
                                self.id)
            self.become_follower(self.term + 1, NONE)
            return False
        # Defense in depth: ignore a snapshot whose configuration lacks us.
        if self.id not in cs.voters and self.id not in cs.learners:
            self.logger.warning("%d attempted to restore snapshot but it is not in the ConfState "
                                "%r; should never happen", self.id, cs)
            return False
        # Already have the snapshot's last entry: just fast-forward commit.
        if self.raft_log.match_term(s.metadata.index, s.metadata.term):
            self.logger.info("%d [commit: %d, lastindex: %d, lastterm: %d] fast-forwarded commit "
                             "to snapshot [index: %d, term: %d]", self.id, self.raft_log.committed,
                             self.raft_log.last_index(), self.raft_log.last_term(),
                             s.metadata.index, s.metadata.term)
            self.raft_log.commit_to(s.metadata.index)
            return False
        self.raft_log.restore(s)
        # Reset the configuration and add the (potentially updated) peers anew.
        confchange_restore(self.prs, cs, self.raft_log.last_index())
        self.is_learner = self.id in cs.learners
        pr = self.prs.get(self.id)
        pr.maybe_update(pr.next - 1)
        self.logger.info("%d [commit: %d, lastindex: %d, lastterm: %d] restored snapshot "
                         "[index: %d, term: %d]", self.id, self.raft_log.committed,
                         self.raft_log.last_index(), self.raft_log.last_term(),
                         s.metadata.index, s.metadata.term)
        return True

    cdef ConfState apply_conf_change(self, ConfChange cc):
        cdef str err = confchange_apply_simple(self.prs, cc, self.raft_log.last_index())
        cdef ConfState cs
        cdef Progress pr
        if err is not None:
            self.logger.warning("%d ignored conf change %r: %s", self.id, cc, err)
        cs = self.prs.conf_state()
        pr = self.prs.get(self.id)
        self.is_learner = pr is not None and pr.is_learner
        self.logger.info("%d switched to configuration %r", self.id, cs)
        if (pr is None or self.is_learner) and self.state == StateLeader:
            # This leader was removed or demoted: step down so the rest can
            # elect a leader among themselves (thesis §4.2.2).
            self.become_follower(self.term, NONE)
            return cs
        if self.state != StateLeader or len(cs.voters) == 0:
            return cs
        if self.maybe_commit():
            # The quorum shrank: what is committed now may have moved.
            self.bcast_append()
        else:
            # Otherwise still probe the newly added replicas; no need to
            # probe the ones we already have.
            for id in self.prs.progress:
                if id != self.id:
                    self.maybe_send_append(id, False)
        # The transferee may have been removed.
        if self.lead_transferee != NONE and self.lead_transferee not in cs.voters:
            self.abort_leader_transfer()
        return cs

    # --- leadership transfer and reads --------------------------------

    cdef int send_timeout_now(self, uint64_t to) except -1:
        self.send(Message.new(MsgTimeoutNow, to, NONE, 0))
        return 0

    cdef void abort_leader_transfer(self) noexcept:
        self.lead_transferee = NONE

    cdef bint committed_entry_in_current_term(self) except -1:
        return self.raft_log.zero_term(self.raft_log.committed) == self.term

    cdef int send_read_index_response(self, Message m) except -1:
        # Thesis §6.4: record the commit index, then confirm leadership with
        # a heartbeat round carrying the request's context.
        cdef bytes ctx = (<Entry>msg_entries(m)[0]).data
        self.read_only.add_request(self.raft_log.committed, m)
        self.read_only.recv_ack(self.id, ctx)
        self.bcast_heartbeat_with_ctx(ctx)
        return 0

    cdef int release_pending_read_index_messages(self) except -1:
        cdef list msgs
        if not self.committed_entry_in_current_term():
            return 0
        msgs = self.pending_read_index_messages
        self.pending_read_index_messages = []
        for m in msgs:
            self.send_read_index_response(<Message>m)
        return 0

    cdef Message response_to_read_index_req(self, Message req, uint64_t read_index):
        cdef Message resp
        if req.frm == NONE or req.frm == self.id:
            self.read_states.append(ReadState.new(read_index, (<Entry>msg_entries(req)[0]).data))
            return None
        resp = Message.new(MsgReadIndexResp, req.frm, NONE, 0)
        resp.index = read_index
        resp._entries = req._entries
        return resp
