# The raft state machine (etcd: raft.go). Deterministic and sans-IO: time
# is tick(), randomness a seeded splitmix64, output the `msgs` list.
from libc.stdint cimport uint64_t
from easyraft._core.types cimport Message, Entry, HardState, SoftState, ConfState, ConfChange, Snapshot
from easyraft._core.log cimport RaftLog
from easyraft._core.progress cimport Progress, ProgressTracker
from easyraft._core.read_only cimport ReadOnly

cdef enum CampaignType:
    CAMPAIGN_PRE_ELECTION = 0
    CAMPAIGN_ELECTION = 1
    CAMPAIGN_TRANSFER = 2


cdef class CoreConfig:
    cdef readonly uint64_t id
    cdef readonly int election_tick
    cdef readonly int heartbeat_tick
    cdef readonly object storage
    cdef readonly uint64_t applied
    cdef readonly uint64_t max_size_per_msg
    cdef readonly uint64_t max_committed_size_per_ready
    cdef readonly uint64_t max_uncommitted_entries_size
    cdef readonly Py_ssize_t max_inflight_msgs
    cdef readonly bint check_quorum
    cdef readonly bint pre_vote
    cdef readonly bint disable_proposal_forwarding
    cdef readonly uint64_t seed
    cdef readonly object logger


cdef class Raft:
    cdef readonly uint64_t id
    cdef readonly uint64_t term
    cdef readonly uint64_t vote
    cdef readonly uint64_t lead
    cdef readonly int state                 # StateType
    cdef readonly bint is_learner
    cdef list read_states                   # ReadState, handed out by Ready
    cdef RaftLog raft_log
    cdef ProgressTracker prs
    cdef uint64_t max_msg_size
    cdef uint64_t max_uncommitted_size
    cdef uint64_t uncommitted_size          # payload bytes appended but not yet committed
    # Outgoing messages; the application sends them after persisting Ready.
    cdef list msgs
    # Node we are transferring leadership to, or 0.
    cdef readonly uint64_t lead_transferee
    # Only one conf change may be pending (in the log, not yet applied) at a
    # time: this is the log position of the latest one (thesis §4.1).
    cdef uint64_t pending_conf_index
    cdef ReadOnly read_only
    # Ticks since the last election timeout reset (all roles), or since the
    # last CheckQuorum round (leader).
    cdef int election_elapsed
    # Ticks since the last heartbeat (leader only).
    cdef int heartbeat_elapsed
    cdef bint check_quorum
    cdef bint pre_vote
    cdef bint disable_proposal_forwarding
    cdef int heartbeat_timeout
    cdef int election_timeout
    # In [election_timeout, 2 * election_timeout), re-drawn on every reset
    # (thesis §3.4): spreads candidates apart so split votes are rare.
    cdef int randomized_election_timeout
    cdef uint64_t rng_state
    # Committed MsgReadIndex waiting for an entry of our own term to commit.
    cdef list pending_read_index_messages
    cdef object logger

    cdef uint64_t rand_next(self) noexcept
    cdef SoftState soft_state(self)
    cdef HardState hard_state(self)
    cdef bint has_leader(self) noexcept
    cdef int send(self, Message m) except -1
    cdef int send_append(self, uint64_t to) except -1
    cdef bint maybe_send_append(self, uint64_t to, bint send_if_empty) except -1
    cdef int send_heartbeat(self, uint64_t to, bytes ctx) except -1
    cdef int bcast_append(self) except -1
    cdef int bcast_heartbeat(self) except -1
    cdef int bcast_heartbeat_with_ctx(self, bytes ctx) except -1
    cdef int advance(self, list committed_entries, list entries, Snapshot snap) except -1
    cdef bint maybe_commit(self) except -1
    cdef int reset(self, uint64_t term) except -1
    cdef bint append_entry(self, list es) except -1
    cdef int tick(self) except -1
    cdef int tick_election(self) except -1
    cdef int tick_heartbeat(self) except -1
    cdef int become_follower(self, uint64_t term, uint64_t lead) except -1
    cdef int become_candidate(self) except -1
    cdef int become_pre_candidate(self) except -1
    cdef int become_leader(self) except -1
    cdef int hup(self, int t) except -1
    cdef int campaign(self, int t) except -1
    cdef int poll(self, uint64_t id, int t, bint v) except -1
    cdef int step(self, Message m) except -1
    cdef int step_leader(self, Message m) except -1
    cdef int step_candidate(self, Message m) except -1
    cdef int step_follower(self, Message m) except -1
    cdef int handle_append_entries(self, Message m) except -1
    cdef int handle_heartbeat(self, Message m) except -1
    cdef int handle_snapshot(self, Message m) except -1
    cdef bint restore(self, Snapshot s) except -1
    cdef bint promotable(self) except -1
    cdef ConfState apply_conf_change(self, ConfChange cc)
    cdef int load_state(self, HardState hs) except -1
    cdef bint past_election_timeout(self) noexcept
    cdef void reset_randomized_election_timeout(self) noexcept
    cdef int send_timeout_now(self, uint64_t to) except -1
    cdef void abort_leader_transfer(self) noexcept
    cdef bint committed_entry_in_current_term(self) except -1
    cdef int send_read_index_response(self, Message m) except -1
    cdef int release_pending_read_index_messages(self) except -1
    cdef Message response_to_read_index_req(self, Message req, uint64_t read_index)
    cdef bint increase_uncommitted_size(self, list ents) noexcept
    cdef void reduce_uncommitted_size(self, list ents) noexcept
