"""One test per rule of the Raft thesis, driven through the public RawNode API
(etcd: raft_paper_test.go, plus the raft_test.go cases for PreVote,
CheckQuorum, leadership transfer, ReadIndex, flow control and membership).

Single-node tests build a RawNode over a MemoryStorage whose membership comes
from a base snapshot at index 1, term 1 (so the log proper starts at index 2),
and inspect the Ready it produces. Cluster tests use tests/core/network.py,
whose safety checker also runs on every Ready.
"""
import pytest

from easyraft.core import (
    CompactedError,
    ConfChange,
    ConfChangeType,
    ConfState,
    CoreConfig,
    Entry,
    EntryType,
    HardState,
    MemoryStorage,
    Message,
    MsgType,
    ProposalDroppedError,
    RaftError,
    RawNode,
    ReadState,
    Snapshot,
    SnapshotMetadata,
    StateType,
)

from .network import Network

Follower, Candidate, Leader, PreCandidate = (StateType.StateFollower, StateType.StateCandidate,
                                             StateType.StateLeader, StateType.StatePreCandidate)
ET = 10   # election_tick used throughout


# --- single-node helpers ------------------------------------------------------------

def make_storage(voters=(1, 2, 3), learners=(), terms=(), hs=None):
    """A storage with a base snapshot at (index 1, term 1) holding the membership,
    then one entry per item of `terms` at indexes 2, 3, ..."""
    st = MemoryStorage()
    st.apply_snapshot(Snapshot(metadata=SnapshotMetadata(
        index=1, term=1, conf_state=ConfState(voters=voters, learners=learners))))
    if terms:
        st.append([Entry(term=t, index=2 + k, data=b"") for k, t in enumerate(terms)])
    st.set_hard_state(hs if hs is not None else HardState(term=1, vote=0, commit=1))
    return st


def new_node(node_id=1, storage=None, *, pre_vote=False, check_quorum=False, seed=None, **cfg):
    st = storage if storage is not None else make_storage()
    params = dict(election_tick=ET, heartbeat_tick=1, max_size_per_msg=1 << 20,
                  max_inflight_msgs=256)
    params.update(cfg)
    rn = RawNode(CoreConfig(id=node_id, storage=st, pre_vote=pre_vote, check_quorum=check_quorum,
                            seed=node_id if seed is None else seed, **params))
    return rn, st


def persist(rn, st):
    """Run one Ready cycle (persist, then advance); return the Ready."""
    rd = rn.ready()
    if rd.snapshot is not None:
        st.apply_snapshot(rd.snapshot)
    st.append(rd.entries)
    if rd.hard_state is not None:
        st.set_hard_state(rd.hard_state)
    rn.advance(rd)
    return rd


def drain(rn, st):
    """Run Ready cycles until none is left; return all messages sent."""
    out = []
    while rn.has_ready():
        out.extend(persist(rn, st).messages)
    return out


def make_leader(rn, st, voters=(2, 3)):
    """Campaign and collect votes from `voters` (pre_vote off): rn becomes leader."""
    rn.campaign()
    term = rn.status().term
    drain(rn, st)
    for v in voters:
        rn.step(Message(type=MsgType.MsgVoteResp, frm=v, to=rn.status().id, term=term))
    assert rn.status().raft_state == Leader
    return term


def of_type(msgs, t):
    return [m for m in msgs if m.type == t]


def ticks_until_campaign(rn, limit=10 * ET):
    for n in range(1, limit + 1):
        rn.tick()
        if rn.status().raft_state != Follower:
            return n
    raise AssertionError("never campaigned")


# --- elections ------------------------------------------------------------------------

def test_election_timeout_randomized_in_range():
    """A follower that hears nothing campaigns after a randomized timeout in
    [election_tick, 2*election_tick), and over many seeds every value of that
    range occurs. Reference: thesis §3.4"""
    seen = []
    for seed in range(200):
        rn, _ = new_node(seed=seed)
        seen.append(ticks_until_campaign(rn))
    assert min(seen) >= ET and max(seen) < 2 * ET, sorted(set(seen))
    assert set(seen) == set(range(ET, 2 * ET))


def test_election_timeout_rerandomized_each_term():
    """A candidate that does not win waits a fresh randomized timeout before
    its next election. Reference: thesis §3.4"""
    rn, st = new_node(seed=3)
    gaps = []
    ticks_until_campaign(rn)
    drain(rn, st)
    for _ in range(30):
        term = rn.status().term
        n = 0
        while rn.status().term == term:
            rn.tick()
            n += 1
            assert n < 2 * ET + 1
        drain(rn, st)
        gaps.append(n)
    assert all(ET <= g < 2 * ET for g in gaps), gaps
    assert len(set(gaps)) > 3, gaps


def test_election_timeouts_rarely_conflict_across_nodes():
    """Different nodes draw different timeouts, so split votes are rare: in a
    5-node cluster the earliest timeout is shared in few of 200 trials.
    Reference: thesis §3.4"""
    conflicts = 0
    trials = 200
    for trial in range(trials):
        timeouts = []
        for node_id in range(1, 6):
            rn, _ = new_node(node_id, make_storage(voters=(1, 2, 3, 4, 5)),
                             seed=trial * 100 + node_id)
            timeouts.append(ticks_until_campaign(rn))
        if timeouts.count(min(timeouts)) > 1:
            conflicts += 1
    assert conflicts / trials <= 0.3, conflicts


def test_election_timeout_deterministic_for_a_seed():
    """The core draws time from its seeded RNG only: equal seeds, equal
    timeouts. Reference: thesis §3.4"""
    a = [ticks_until_campaign(new_node(seed=s)[0]) for s in range(20)]
    b = [ticks_until_campaign(new_node(seed=s)[0]) for s in range(20)]
    assert a == b


def test_follower_campaigns_votes_for_itself_and_requests_votes():
    """On timeout a follower increments its term, votes for itself, persists
    both and sends RequestVote with its last log position to every peer.
    Reference: thesis §3.4"""
    rn, st = new_node(1, make_storage(terms=(1, 2)))    # last entry: index 3, term 2
    ticks_until_campaign(rn)
    rd = persist(rn, st)
    assert rd.hard_state.term == 2 and rd.hard_state.vote == 1
    assert rd.must_sync
    assert rd.soft_state.raft_state == Candidate
    votes = sorted(((m.to, m.term, m.log_term, m.index) for m in rd.messages), key=lambda v: v[0])
    assert votes == [(2, 2, 2, 3), (3, 2, 2, 3)]
    assert all(m.type == MsgType.MsgVote for m in rd.messages)


@pytest.mark.parametrize("n,votes,want", [
    (1, {}, Leader),
    (3, {2: True}, Leader),
    (3, {2: True, 3: True}, Leader),
    (3, {}, Candidate),
    (3, {2: False}, Candidate),
    (3, {2: False, 3: False}, Follower),
    (5, {2: True, 3: True}, Leader),
    (5, {2: True}, Candidate),
    (5, {2: True, 3: False, 4: False}, Candidate),
    (5, {2: False, 3: False, 4: False}, Follower),
], ids=lambda v: str(v) if not isinstance(v, dict) else "")
def test_candidate_wins_with_majority_of_votes(n, votes, want):
    """A candidate wins with votes from a majority, stays candidate while the
    outcome is open, and steps down once a majority rejected it.
    Reference: thesis §3.4"""
    rn, st = new_node(1, make_storage(voters=tuple(range(1, n + 1))))
    rn.campaign()
    term = rn.status().term
    drain(rn, st)
    for frm, granted in votes.items():
        rn.step(Message(type=MsgType.MsgVoteResp, frm=frm, to=1, term=term, reject=not granted))
    st_ = rn.status()
    assert st_.raft_state == want
    assert st_.term == term


@pytest.mark.parametrize("terms,log_term,index,want_reject", [
    # (voter's log after the base entry (1,1); candidate's last log term and index)
    ((1,), 1, 2, False),          # same last term, same length
    ((1,), 1, 3, False),          # same last term, candidate longer
    ((1, 1), 1, 2, True),         # same last term, candidate shorter
    ((1,), 2, 2, False),          # candidate has a higher last term
    ((1,), 2, 3, False),
    ((1, 1), 2, 2, False),        # ... even with a shorter log
    ((2,), 1, 2, True),           # voter has a higher last term
    ((2,), 1, 3, True),
    ((2, 1), 1, 2, True),
])
def test_voter_grants_only_candidates_with_up_to_date_logs(terms, log_term, index, want_reject):
    """A vote is granted only if the candidate's log is at least as
    up-to-date: higher last term, or same last term and at least as long.
    Reference: thesis §3.6.1"""
    rn, st = new_node(1, make_storage(terms=terms, hs=HardState(term=2, vote=0, commit=1)))
    rn.step(Message(type=MsgType.MsgVote, frm=2, to=1, term=3, log_term=log_term, index=index))
    msgs = drain(rn, st)
    assert [(m.type, m.to, m.reject) for m in msgs] == [(MsgType.MsgVoteResp, 2, want_reject)]
    assert msgs[0].term == 3


@pytest.mark.parametrize("vote,candidate,want_reject", [
    (0, 2, False), (0, 3, False), (2, 2, False), (3, 3, False), (2, 3, True), (3, 2, True),
])
def test_voter_grants_at_most_one_vote_per_term(vote, candidate, want_reject):
    """Each server votes for at most one candidate in a term, first come first
    served; a repeated request from the same candidate is granted again, and
    the vote is persisted in the same Ready as the response.
    Reference: thesis §3.4"""
    rn, st = new_node(1, make_storage(hs=HardState(term=2, vote=vote, commit=1)))
    rn.step(Message(type=MsgType.MsgVote, frm=candidate, to=1, term=2, log_term=1, index=1))
    rd = persist(rn, st)
    assert [(m.type, m.to, m.reject) for m in rd.messages] == [(MsgType.MsgVoteResp, candidate,
                                                                want_reject)]
    want_vote = vote if want_reject or vote else candidate
    assert rn.status().vote == want_vote
    if vote == 0:
        assert rd.hard_state is not None and rd.hard_state.vote == candidate and rd.must_sync
    assert st.initial_state()[0].vote == want_vote


@pytest.mark.parametrize("role", ["follower", "candidate", "leader"])
@pytest.mark.parametrize("msg_type", [MsgType.MsgApp, MsgType.MsgHeartbeat, MsgType.MsgVote],
                         ids=lambda t: t.name)
def test_higher_term_message_makes_node_follower(role, msg_type):
    """A server that sees a higher term adopts it and reverts to follower;
    an append or heartbeat also names the leader. Reference: thesis §3.3"""
    rn, st = new_node(1)
    if role == "candidate":
        rn.campaign()
    elif role == "leader":
        make_leader(rn, st)
    drain(rn, st)
    term = rn.status().term
    rn.step(Message(type=msg_type, frm=2, to=1, term=term + 5, log_term=1, index=1))
    s = rn.status()
    assert s.raft_state == Follower
    assert s.term == term + 5
    assert s.lead == (0 if msg_type == MsgType.MsgVote else 2)
    rd = persist(rn, st)
    assert rd.hard_state.term == term + 5


@pytest.mark.parametrize("msg_type", [MsgType.MsgApp, MsgType.MsgHeartbeat, MsgType.MsgVote],
                         ids=lambda t: t.name)
def test_stale_term_message_is_ignored(msg_type):
    """A request with a stale term is rejected or ignored: it changes nothing
    (no term, leader, log or commit change). Reference: thesis §3.3"""
    rn, st = new_node(1, make_storage(hs=HardState(term=5, vote=0, commit=1)))
    drain(rn, st)
    rn.step(Message(type=msg_type, frm=2, to=1, term=4, log_term=1, index=1, commit=1,
                    entries=[Entry(term=4, index=2)] if msg_type == MsgType.MsgApp else None))
    s = rn.status()
    assert (s.term, s.lead, s.raft_state, s.commit) == (5, 0, Follower, 1)
    for m in drain(rn, st):
        assert m.type != MsgType.MsgVoteResp or m.reject
    assert st.last_index() == 1


@pytest.mark.parametrize("leader_term_offset", [0, 1])
def test_candidate_steps_down_for_legitimate_leader(leader_term_offset):
    """A candidate that receives AppendEntries from a leader whose term is at
    least its own recognizes it and returns to follower. Reference: thesis §3.4"""
    rn, st = new_node(1)
    rn.campaign()
    drain(rn, st)
    term = rn.status().term
    rn.step(Message(type=MsgType.MsgApp, frm=2, to=1, term=term + leader_term_offset, log_term=1,
                    index=1))
    s = rn.status()
    assert (s.raft_state, s.lead, s.term) == (Follower, 2, term + leader_term_offset)


def test_leader_appends_empty_entry_at_term_start():
    """A new leader appends a no-op entry of its own term, which it sends to
    every follower (it is what lets it commit earlier entries).
    Reference: thesis §3.6.2, §6.4"""
    rn, st = new_node(1, make_storage(terms=(1, 1)))
    term = make_leader(rn, st)
    rd = persist(rn, st)
    assert [(e.term, e.index, e.type, e.data) for e in rd.entries] == [
        (term, 4, EntryType.EntryNormal, b"")]
    apps = of_type(rd.messages, MsgType.MsgApp)
    assert sorted(m.to for m in apps) == [2, 3]
    for m in apps:
        assert m.term == term and m.entries[-1].index == 4 and m.entries[-1].term == term


def test_leader_sends_heartbeats_every_heartbeat_tick_carrying_commit():
    """A leader sends heartbeats every heartbeat interval; each carries
    min(follower's match, leader commit) so a follower never commits beyond
    what it holds. Reference: thesis §3.4, §3.5"""
    rn, st = new_node(1, heartbeat_tick=2)
    make_leader(rn, st)
    drain(rn, st)
    # Follower 2 acknowledges everything, so the no-op (index 2) commits; 3 stays silent.
    rn.step(Message(type=MsgType.MsgAppResp, frm=2, to=1, term=2, index=2))
    drain(rn, st)
    assert rn.status().commit == 2
    rn.tick()
    assert not of_type(drain(rn, st), MsgType.MsgHeartbeat)
    rn.tick()
    beats = sorted((m.to, m.commit) for m in of_type(drain(rn, st), MsgType.MsgHeartbeat))
    assert beats == [(2, 2), (3, 0)]


def test_follower_commits_from_heartbeat_without_sync():
    """A follower learns the commit index from the leader's heartbeat, hands
    the newly committed entries to the application, and a Ready that only
    moves commit need not be fsynced. Reference: thesis §3.5, §3.8"""
    rn, st = new_node(1, make_storage(terms=(1, 1, 1, 1), hs=HardState(term=1, commit=1)))
    rn.step(Message(type=MsgType.MsgHeartbeat, frm=2, to=1, term=1, commit=3))
    rd = persist(rn, st)
    assert rd.hard_state.commit == 3
    assert [e.index for e in rd.committed_entries] == [2, 3]
    assert rd.must_sync is False
    assert [(m.type, m.to) for m in rd.messages] == [(MsgType.MsgHeartbeatResp, 2)]


# --- log replication ------------------------------------------------------------------------

@pytest.mark.parametrize("log_term,index,want_reject,want_index,want_hint", [
    # follower log: (1,1) base, (2, term 1), (3, term 2); commit 1
    (1, 1, False, 1, 0),     # match at the base entry
    (1, 2, False, 2, 0),     # match at index 2
    (2, 3, False, 3, 0),     # match at the last entry
    (1, 3, True, 3, 2),      # term mismatch at 3: hint = last index with term <= 1
    (3, 4, True, 4, 3),      # index beyond the log: hint = last index
])
def test_follower_checks_previous_entry_before_appending(log_term, index, want_reject, want_index,
                                                         want_hint):
    """A follower accepts AppendEntries only if it has an entry at prevLogIndex
    with prevLogTerm; a rejection carries a hint where the leader should
    probe next. Reference: thesis §3.5"""
    rn, st = new_node(1, make_storage(terms=(1, 2), hs=HardState(term=2, commit=1)))
    rn.step(Message(type=MsgType.MsgApp, frm=2, to=1, term=2, log_term=log_term, index=index,
                    commit=1))
    msgs = drain(rn, st)
    assert len(msgs) == 1 and msgs[0].type == MsgType.MsgAppResp and msgs[0].to == 2
    m = msgs[0]
    assert m.reject == want_reject
    if want_reject:
        assert (m.index, m.reject_hint) == (want_index, want_hint)
    else:
        assert m.index == want_index


@pytest.mark.parametrize("index,log_term,terms,want_log", [
    # follower log: (2, t1), (3, t2); the append carries entries index+1, ... with `terms`
    (3, 2, [3], [(2, 1), (3, 2), (4, 3)]),                 # plain append
    (2, 1, [3, 3], [(2, 1), (3, 3), (4, 3)]),              # conflict at 3: truncate from 3
    (1, 1, [1, 2, 3], [(2, 1), (3, 2), (4, 3)]),           # overlap without conflict: kept
    (1, 1, [3], [(2, 3)]),                                 # conflict at 2: drop 2 and 3
    (3, 2, [], [(2, 1), (3, 2)]),                          # empty append changes nothing
])
def test_follower_truncates_conflicting_suffix(index, log_term, terms, want_log):
    """If an existing entry conflicts with a new one (same index, different
    term), the follower deletes it and all that follow, then appends; entries
    it already has are kept. Reference: thesis §3.5"""
    rn, st = new_node(1, make_storage(terms=(1, 2), hs=HardState(term=2, commit=1)))
    entries = [Entry(term=t, index=index + 1 + k) for k, t in enumerate(terms)]
    rn.step(Message(type=MsgType.MsgApp, frm=2, to=1, term=3, log_term=log_term, index=index,
                    entries=entries, commit=1))
    msgs = drain(rn, st)
    assert [m.reject for m in msgs] == [False]
    got = [(e.index, e.term) for e in st.entries(st.first_index(), st.last_index() + 1)]
    assert got == want_log


def _storage_with(terms, hs_term, voters=(1, 2, 3)):
    return make_storage(voters=voters, terms=terms, hs=HardState(term=hs_term, commit=1))


def test_leader_backtracks_with_reject_hints_in_few_round_trips():
    """Fast backtracking: a follower's rejection names the last index it has
    with a term <= the probed one, so the leader skips a whole diverging term
    in one round trip instead of one entry per round trip.
    Reference: thesis §3.5"""
    # Leader 1: 40 entries of term 3. Follower 2: 40 entries of term 2 (never
    # committed). Both share only the base entry at index 1.
    storages = {1: _storage_with([3] * 40, 3), 2: _storage_with([2] * 40, 2),
                3: _storage_with([3] * 40, 3)}
    net = Network((1, 2, 3), storages=storages, pre_vote=False, check_quorum=False,
                  check_safety=False)
    net.elect(1)
    net.tick(3)
    rejects = [m for m in net.delivered if m.type == MsgType.MsgAppResp and m.frm == 2 and m.reject]
    assert 1 <= len(rejects) <= 3, [(m.index, m.reject_hint, m.log_term) for m in rejects]
    assert net.nodes[2].log() == net.nodes[1].log()


def test_leader_commits_only_entries_of_its_own_term_by_counting():
    """A leader never commits an entry of an earlier term by counting
    replicas; such entries commit only with a later entry of its own term.
    Reference: thesis §3.6.2"""
    # Leader-to-be has uncommitted entries of term 2 at indexes 2, 3.
    rn, st = new_node(1, make_storage(terms=(2, 2), hs=HardState(term=2, commit=1)))
    term = make_leader(rn, st)          # term 3, no-op at index 4
    drain(rn, st)
    # Follower 2 acknowledges the old entries only: a majority holds index 3.
    rn.step(Message(type=MsgType.MsgAppResp, frm=2, to=1, term=term, index=3))
    drain(rn, st)
    assert rn.status().commit == 1
    # Once the no-op of term 3 is on a majority, everything up to it commits.
    rn.step(Message(type=MsgType.MsgAppResp, frm=2, to=1, term=term, index=4))
    rd_msgs = drain(rn, st)
    assert rn.status().commit == 4
    assert rd_msgs  # the new commit index goes out to the followers


def test_figure8_old_term_entry_on_majority_is_not_committed_and_is_overwritten():
    """Thesis Figure 3.7 end to end on 5 nodes: an entry of term 2 that reaches
    a majority under the term-4 leader S1 is not committed; S1 crashes, S5
    (holding a term-3 entry at the same index) is elected and overwrites it
    everywhere, and no node ever applied the term-2 entry.
    Reference: thesis §3.6.2"""
    net = Network((1, 2, 3, 4, 5), pre_vote=False, check_quorum=False, max_size_per_msg=1)
    net.elect(1)                                   # term 2; no-op at index 6 everywhere
    base = net.nodes[1].rn.status().last_index
    idx = base + 1
    # (a) S1 replicates a term-2 entry at idx to S2 only.
    for other in (3, 4, 5):
        net.cut(1, other)
    net.propose(1, b"term2")
    assert net.nodes[2].log()[-1] == (idx, 2)
    # (b) S1 crashes; S5 wins term 3 with S3, S4 and takes a client entry at idx,
    # which it does not replicate.
    net.recover()
    net.stop(1)
    net.cut(5, 2)
    net.ignore(MsgType.MsgApp)
    net.campaign(5)
    assert net.state(5) == Leader and net.term(5) == 3
    assert net.nodes[5].rn.status().last_index == idx          # its no-op for term 3
    net.stop(5)
    # (c) S1 restarts and wins term 4 with S2, S3, S4 (again without sending appends).
    net.recover()
    net.ignore(MsgType.MsgApp)
    net.start(1)
    net.campaign(1)
    if net.state(1) != Leader:                     # term 3 was taken; S1 tries again
        net.campaign(1)
    assert net.state(1) == Leader and net.term(1) == 4
    # S1 replicates the term-2 entry to S3 but nothing of term 4 reaches anyone.
    net.recover()
    net.cut(1, 2)
    net.cut(1, 4)
    term4_index = net.nodes[1].rn.status().last_index
    # Term-4 entries are lost on the way to a node that would accept them
    # (one holding idx); a node without idx still sees the probe and rejects it.
    net.filters.append(lambda m: m.type == MsgType.MsgApp and (idx, 2) in net.nodes[m.to].log()
                       and any(e.index >= term4_index for e in m.entries))
    net.tick(3, ids=[1])
    assert (idx, 2) in net.nodes[3].log()
    holders = [i for i in (1, 2, 3) if (idx, 2) in net.nodes[i].log()]
    assert holders == [1, 2, 3]                    # a majority of 5 holds it ...
    assert net.status(1).commit < idx              # ... but S1 must not commit it
    # (d) S1 crashes; S5 restarts and is elected, overwriting idx with its term-3 entry.
    net.recover()
    net.stop(1)
    net.start(5)
    for _ in range(3):
        if net.state(5) == Leader:
            break
        net.campaign(5)
    assert net.state(5) == Leader
    net.tick(3)
    for i in (2, 3, 4, 5):
        assert (idx, 3) in net.nodes[i].log(), (i, net.nodes[i].log())
    net.start(1)
    net.tick(5)
    assert (idx, 3) in net.nodes[1].log()
    assert all(b"term2" not in n.data() for n in net.nodes.values())


def test_figure8_old_term_entry_commits_with_current_term_entry():
    """The other branch of Figure 3.7: once the term-4 leader replicates an
    entry of its own term to a majority, the earlier term-2 entry commits with
    it and is applied everywhere. Reference: thesis §3.6.2"""
    net = Network((1, 2, 3, 4, 5), pre_vote=False, check_quorum=False)
    net.elect(1)
    for other in (3, 4, 5):
        net.cut(1, other)
    net.propose(1, b"term2")
    net.recover()
    net.elect(1)                                   # re-elected at a later term, with S2's help
    net.tick(2)
    assert all(n.data() == [b"term2"] for n in net.nodes.values())


def test_follower_forwards_proposal_to_leader():
    """A client request sent to a follower is forwarded to the leader and
    committed and applied on every node. Reference: thesis §6.2"""
    net = Network((1, 2, 3), pre_vote=False, check_quorum=False)
    net.elect(1)
    net.nodes[2].rn.propose(b"via follower")
    rd = net.nodes[2].process_ready()
    assert [(m.type, m.to) for m in rd.messages] == [(MsgType.MsgProp, 1)]
    net.stabilize()
    assert all(n.data() == [b"via follower"] for n in net.nodes.values())


def test_proposal_dropped_without_leader():
    """With no known leader a proposal cannot be routed: it is refused with
    ProposalDroppedError (a RaftError), by followers and candidates alike.
    Reference: thesis §6.2"""
    rn, st = new_node(1)
    with pytest.raises(ProposalDroppedError):
        rn.propose(b"x")
    rn.campaign()
    assert rn.status().raft_state == Candidate
    with pytest.raises(RaftError):
        rn.propose(b"x")
    assert st.last_index() == 1 and not any(e.data == b"x" for e in persist(rn, st).entries)


def test_proposal_dropped_during_leadership_transfer():
    """While a leadership transfer is under way the leader stops accepting
    proposals. Reference: thesis §3.10"""
    net = Network((1, 2, 3), pre_vote=False, check_quorum=False)
    net.elect(1)
    net.cut(1, 3)
    net.propose(1, b"a")                           # node 3 lags behind
    net.nodes[1].rn.transfer_leader(3)
    net.stabilize()
    assert net.status(1).lead_transferee == 3
    with pytest.raises(ProposalDroppedError):
        net.nodes[1].rn.propose(b"b")


# --- PreVote and CheckQuorum ---------------------------------------------------------------

@pytest.mark.parametrize("pre_vote,want_disrupted", [(True, False), (False, True)])
def test_prevote_rejoining_node_does_not_disrupt_stable_leader(pre_vote, want_disrupted):
    """With PreVote a partitioned node that keeps timing out never bumps its
    term, so when it rejoins the leader keeps its term and office; without
    PreVote the same scenario deposes the leader. Reference: thesis §9.6"""
    net = Network((1, 2, 3), pre_vote=pre_vote, check_quorum=False)
    net.elect(1)
    term = net.term(1)
    net.isolate(3)
    net.tick(10 * ET)
    if pre_vote:
        assert net.term(3) == term
        assert net.state(3) == PreCandidate
    else:
        assert net.term(3) > term
    net.recover()
    net.tick(2 * ET)
    disrupted = net.term(1) != term
    assert disrupted == want_disrupted
    if not want_disrupted:
        assert net.state(1) == Leader and net.status(3).lead == 1


@pytest.mark.parametrize("check_quorum", [True, False])
def test_check_quorum_deposes_isolated_leader(check_quorum):
    """With CheckQuorum a leader that has not heard from a majority within an
    election timeout steps down, and the majority elects a new leader.
    Reference: thesis §6.2"""
    net = Network((1, 2, 3), pre_vote=True, check_quorum=check_quorum)
    net.elect(1)
    net.isolate(1)
    net.tick(3 * ET)
    if check_quorum:
        assert net.state(1) != Leader              # a follower, campaigning in vain
        assert net.leader() in (2, 3)
    else:
        assert net.state(1) == Leader
    net.recover()
    net.tick(2 * ET)
    assert sum(1 for i in (1, 2, 3) if net.state(i) == Leader) == 1


def test_check_quorum_follower_ignores_votes_while_leader_is_active():
    """A follower that heard from its leader within the minimum election
    timeout ignores RequestVote (leader stickiness), so a node with a higher
    term cannot depose a working leader. Reference: thesis §4.2.3"""
    rn, st = new_node(2, make_storage(hs=HardState(term=2, commit=1)), check_quorum=True)
    rn.step(Message(type=MsgType.MsgHeartbeat, frm=1, to=2, term=2))
    drain(rn, st)
    rn.step(Message(type=MsgType.MsgVote, frm=3, to=2, term=5, log_term=1, index=1))
    assert rn.status().term == 2 and rn.status().lead == 1
    assert not of_type(drain(rn, st), MsgType.MsgVoteResp)


# --- leadership transfer ---------------------------------------------------------------------

def test_leadership_transfer_via_timeout_now():
    """The leader sends TimeoutNow to an up-to-date transferee, which starts an
    election at once and wins. Reference: thesis §3.10"""
    net = Network((1, 2, 3))
    net.elect(1)
    term = net.term(1)
    net.nodes[1].rn.transfer_leader(2)
    rd = net.nodes[1].process_ready()
    assert [(m.type, m.to) for m in rd.messages] == [(MsgType.MsgTimeoutNow, 2)]
    net.stabilize()
    assert net.state(2) == Leader and net.term(2) == term + 1
    assert net.state(1) == Follower and net.status(1).lead == 2


def test_leadership_transfer_catches_up_lagging_transferee_first():
    """A transferee behind the leader's log is first brought up to date, then
    sent TimeoutNow. Reference: thesis §3.10"""
    net = Network((1, 2, 3))
    net.elect(1)
    net.cut(1, 3)
    for i in range(5):
        net.propose(1, b"p%d" % i)
    net.recover()
    net.nodes[1].rn.transfer_leader(3)
    net.stabilize()
    net.tick(1)
    assert net.state(3) == Leader
    assert net.nodes[3].data() == [b"p%d" % i for i in range(5)]


def test_leadership_transfer_aborted_after_election_timeout():
    """A transfer that does not complete within an election timeout is
    abandoned and the leader accepts proposals again. Reference: thesis §3.10"""
    net = Network((1, 2, 3), check_quorum=False)
    net.elect(1)
    net.isolate(3)
    net.nodes[1].rn.transfer_leader(3)
    net.stabilize()
    assert net.status(1).lead_transferee == 3
    net.tick(ET, ids=[1])
    assert net.status(1).lead_transferee == 0
    assert net.state(1) == Leader
    net.propose(1, b"after")
    assert net.nodes[2].data() == [b"after"]


# --- ReadIndex -------------------------------------------------------------------------------

def test_read_index_released_only_after_heartbeat_quorum():
    """A read-only request is answered at the commit index only after a round
    of heartbeats confirms, through a majority, that the leader still leads.
    Reference: thesis §6.4"""
    net = Network((1, 2, 3))
    net.elect(1)
    net.propose(1, b"w")
    commit = net.status(1).commit
    leader = net.nodes[1]
    leader.rn.read_index(b"ctx1")
    leader.process_ready()
    beats = net.take(lambda m: m.type == MsgType.MsgHeartbeat)
    assert sorted(m.to for m in beats) == [2, 3] and all(m.context == b"ctx1" for m in beats)
    assert leader.read_states == []
    # Follower 2 answers, but its answer is lost: still nothing.
    net.deliver_one(beats[0])
    net.take(lambda m: m.type == MsgType.MsgHeartbeatResp)
    net.stabilize()
    assert leader.read_states == []
    # Follower 3 answers: with the leader itself, a majority.
    net.deliver_one(beats[1])
    net.stabilize()
    assert leader.read_states == [ReadState(index=commit, request_ctx=b"ctx1")]


def test_read_index_from_follower_goes_through_leader():
    """A follower's read request is answered by the leader with its commit
    index, after the leader confirmed its leadership. Reference: thesis §6.4"""
    net = Network((1, 2, 3))
    net.elect(1)
    net.propose(1, b"w")
    net.nodes[2].rn.read_index(b"ctx2")
    net.stabilize()
    assert net.nodes[2].read_states == [ReadState(index=net.status(1).commit, request_ctx=b"ctx2")]
    kinds = {m.type for m in net.delivered}
    assert MsgType.MsgReadIndex in kinds and MsgType.MsgReadIndexResp in kinds


def test_read_index_with_a_malformed_request_is_dropped():
    """A MsgReadIndex carries its request context as its only entry; one with
    none or several (a broken or hostile peer) is dropped, not a crash."""
    net = Network((1, 2, 3))
    net.elect(1)
    net.propose(1, b"w")
    leader = net.nodes[1]
    for ents in ([], [Entry(data=b"a"), Entry(data=b"b")]):
        leader.rn.step(Message(type=MsgType.MsgReadIndex, to=1, frm=2, entries=ents))
        net.stabilize()
        assert leader.read_states == [] and net.nodes[2].read_states == []
    net.nodes[2].rn.read_index(b"ok")      # a well-formed one still works
    net.stabilize()
    assert net.nodes[2].read_states == [ReadState(index=net.status(1).commit, request_ctx=b"ok")]


# --- snapshots and compaction ----------------------------------------------------------------

def test_snapshot_sent_to_follower_behind_compacted_log():
    """A follower that needs entries the leader already compacted receives the
    leader's snapshot, restores from it and then follows by appends again.
    Reference: thesis §5.1"""
    net = Network((1, 2, 3), compact_threshold=10, compact_keep=2)
    net.elect(1)
    net.isolate(3)
    for i in range(40):
        net.propose(1, b"e%d" % i)
    assert net.nodes[1].storage.first_index() > net.nodes[3].storage.last_index() + 1
    net.recover()
    net.tick(3)
    snaps = [m for m in net.delivered if m.type == MsgType.MsgSnap and m.to == 3]
    assert len(snaps) >= 1
    assert net.nodes[3].storage.snapshot().metadata.index > 0
    assert net.nodes[3].data() == net.nodes[1].data()
    net.propose(1, b"after")
    assert net.nodes[3].data()[-1] == b"after"
    assert net.status(1).progress[3].state == "replicate"


def test_report_snapshot_failure_returns_follower_to_probe():
    """While a snapshot is in flight the follower's progress is in state
    snapshot and receives no appends; a failed send reported with
    report_snapshot(ok=False) puts it back to probe. Reference: thesis §5.1"""
    net = Network((1, 2, 3), compact_threshold=10, compact_keep=2, auto_report_snapshot=False)
    net.elect(1)
    net.isolate(3)
    for i in range(30):
        net.propose(1, b"e%d" % i)
    net.recover()
    net.ignore(MsgType.MsgSnap)
    net.tick(2)
    pr = net.status(1).progress[3]
    assert pr.state == "snapshot"
    def appends_to_3():
        return len([m for m in net.dropped + net.delivered
                    if m.to == 3 and m.type == MsgType.MsgApp and m.entries])
    before = appends_to_3()
    net.tick(3)
    assert appends_to_3() == before
    net.nodes[1].rn.report_snapshot(3, ok=False)
    assert net.status(1).progress[3].state == "probe"


def test_memory_storage_compaction_and_errors():
    """MemoryStorage keeps a dummy entry at the compaction point: entries
    before it raise CompactedError, the snapshot keeps index, term and
    membership. Reference: thesis §5.1"""
    st = MemoryStorage()
    st.append([Entry(term=1, index=i) for i in range(1, 11)])
    snap = st.create_snapshot(6, ConfState([1, 2, 3]), b"state")
    assert (snap.metadata.index, snap.metadata.term, snap.data) == (6, 1, b"state")
    st.compact(6)
    assert st.first_index() == 7 and st.last_index() == 10
    assert st.term(6) == 1
    with pytest.raises(CompactedError):
        st.term(5)
    with pytest.raises(CompactedError):
        st.entries(5, 8)
    with pytest.raises(CompactedError):
        st.compact(4)
    assert st.initial_state()[1] == ConfState([1, 2, 3])


# --- membership --------------------------------------------------------------------------------

def test_add_node_joins_catches_up_and_counts_for_quorum():
    """A node added with AddNode starts empty, is caught up by the leader and
    then counts toward the quorum. Reference: thesis §4.1"""
    net = Network((1, 2, 3))
    net.elect(1)
    net.propose(1, b"before")
    net.propose_conf_change(1, ConfChangeType.ConfChangeAddNode, 4, b"http://n4")
    net.tick(2)
    assert 4 in net.nodes and net.nodes[4].data() == [b"before"]
    assert tuple(net.status(1).voters) == (1, 2, 3, 4)
    # With 4 voters, the leader and one follower are not a quorum.
    net.cut(1, 3)
    net.cut(1, 4)
    net.propose(1, b"needs three")
    assert net.nodes[1].data() == [b"before"]
    net.recover()
    net.tick(2)
    assert net.nodes[4].data() == [b"before", b"needs three"]


def test_remove_node_shrinks_quorum():
    """After RemoveNode the remaining members form the quorum on their own.
    Reference: thesis §4.1"""
    net = Network((1, 2, 3))
    net.elect(1)
    net.propose_conf_change(1, ConfChangeType.ConfChangeRemoveNode, 3)
    assert tuple(net.nodes[1].conf_state.voters) == (1, 2)
    net.isolate(2)
    net.propose(1, b"alone")                       # 1 of 2 is not a quorum
    assert net.nodes[1].data() == []
    net.recover()
    net.isolate(3)
    net.tick(2)
    assert net.nodes[1].data() == [b"alone"] and net.nodes[2].data() == [b"alone"]


def test_update_node_carries_context_and_keeps_membership():
    """UpdateNode carries the member's new URL in its context to every node's
    application, without changing who votes. Reference: thesis §4.1"""
    net = Network((1, 2, 3))
    net.elect(1)
    net.propose_conf_change(1, ConfChangeType.ConfChangeUpdateNode, 2, b"http://new:2")
    for n in net.nodes.values():
        assert n.conf_changes[-1] == ConfChange(type=ConfChangeType.ConfChangeUpdateNode,
                                                node_id=2, context=b"http://new:2")
        assert n.conf_state == ConfState([1, 2, 3])


def test_learner_replicates_but_never_votes_or_counts():
    """A learner receives the log but is not counted for commitment and never
    campaigns. Reference: thesis §4.2.1"""
    net = Network((1, 2, 3))
    net.elect(1)
    net.propose_conf_change(1, ConfChangeType.ConfChangeAddLearnerNode, 4)
    net.tick(2)
    assert net.nodes[1].conf_state == ConfState([1, 2, 3], [4])
    net.propose(1, b"x")
    assert net.nodes[4].data() == [b"x"]
    # Leader + learner is not a quorum.
    net.cut(1, 2)
    net.cut(1, 3)
    net.propose(1, b"y")
    assert net.nodes[4].storage.last_index() == net.nodes[1].storage.last_index()
    assert net.nodes[1].data() == [b"x"]
    # A learner left alone never campaigns.
    net.recover()
    net.isolate(4)
    sent_before = len(net.dropped)
    net.tick(5 * ET)
    assert net.state(4) == Follower
    assert not [m for m in net.dropped[sent_before:] + net.delivered
                if m.frm == 4 and m.type in (MsgType.MsgVote, MsgType.MsgPreVote)]


def test_only_one_conf_change_pending_at_a_time():
    """A second membership change is refused until the first is applied; a
    refused change is never applied. Reference: thesis §4.1"""
    net = Network((1, 2, 3))
    net.elect(1)
    rn = net.nodes[1].rn
    rn.propose_conf_change(ConfChange(type=ConfChangeType.ConfChangeAddNode, node_id=4))
    with pytest.raises(ProposalDroppedError):
        rn.propose_conf_change(ConfChange(type=ConfChangeType.ConfChangeAddNode, node_id=5))
    net.stabilize()
    assert net.nodes[1].conf_state.voters == (1, 2, 3, 4)
    net.propose_conf_change(1, ConfChangeType.ConfChangeAddNode, 5)
    assert net.nodes[1].conf_state.voters == (1, 2, 3, 4, 5)


def test_second_conf_change_forwarded_by_follower_becomes_noop():
    """A conf change forwarded while another is pending is replaced by an
    empty entry, so it commits as a no-op and changes nothing.
    Reference: thesis §4.1"""
    net = Network((1, 2, 3))
    net.elect(1)
    net.nodes[1].rn.propose_conf_change(ConfChange(type=ConfChangeType.ConfChangeAddNode,
                                                   node_id=4))
    net.nodes[2].rn.propose_conf_change(ConfChange(type=ConfChangeType.ConfChangeAddNode,
                                                   node_id=5))
    net.stabilize()
    net.tick(2)
    assert net.nodes[1].conf_state.voters == (1, 2, 3, 4)
    assert [cc.node_id for cc in net.nodes[1].conf_changes][-1] == 4


def test_removed_leader_steps_down():
    """A leader that applies its own removal steps down and does not campaign
    again; the rest elect a leader among themselves. Reference: thesis §4.2.2"""
    net = Network((1, 2, 3), stop_removed=False)
    net.elect(1)
    start = len(net.delivered), len(net.dropped)
    net.propose_conf_change(1, ConfChangeType.ConfChangeRemoveNode, 1)
    assert net.state(1) != Leader
    net.tick(4 * ET)
    assert net.leader() in (2, 3)
    assert net.state(1) == Follower
    assert not [m for m in net.delivered[start[0]:] + net.dropped[start[1]:]
                if m.frm == 1 and m.type in (MsgType.MsgVote, MsgType.MsgPreVote)]
    net.propose(net.leader(), b"without 1")
    assert net.nodes[2].data() == [b"without 1"]


# --- flow control -------------------------------------------------------------------------------

def test_inflight_window_limits_unacknowledged_appends():
    """A leader replicating to a follower keeps at most max_inflight_msgs
    appends unacknowledged, then pauses until acknowledgements free the
    window. Reference: thesis §10.2.1"""
    net = Network((1, 2, 3), max_inflight_msgs=3)
    net.elect(1)
    net.propose(1, b"warmup")
    assert net.status(1).progress[2].state == "replicate"
    net.drop(2, 1)                                 # follower 2's acks are lost
    start = len(net.delivered)
    for i in range(10):
        net.propose(1, b"p%d" % i)
    # Appends that carry entries occupy the window; commit-only ones do not.
    apps = [m for m in net.delivered[start:]
            if m.type == MsgType.MsgApp and m.to == 2 and m.entries]
    assert len(apps) == 3
    pr = net.status(1).progress[2]
    assert pr.state == "replicate" and pr.match < net.status(1).last_index
    net.recover()
    net.tick(3)
    assert net.nodes[2].data() == net.nodes[1].data() and len(net.nodes[2].data()) == 11


def test_append_batches_respect_max_size_per_msg():
    """Entries sent to a lagging follower are batched up to max_size_per_msg
    bytes per append, and an entry larger than the limit still goes, alone.
    Reference: thesis §10.2.1"""
    net = Network((1, 2, 3), max_size_per_msg=1000)
    net.elect(1)
    net.isolate(3)
    for i in range(12):
        net.propose(1, bytes([i]) * 300)
    net.propose(1, b"L" * 5000)
    net.recover()
    start = len(net.delivered)
    net.tick(3)
    apps = [m for m in net.delivered[start:]
            if m.type == MsgType.MsgApp and m.to == 3 and m.entries]
    sizes = [sum(len(e.data) for e in m.entries) for m in apps]
    assert max(len(m.entries) for m in apps) >= 2, sizes
    for m, size in zip(apps, sizes, strict=True):
        assert size <= 1000 or len(m.entries) == 1, sizes
    assert any(len(m.entries) == 1 and len(m.entries[0].data) == 5000 for m in apps)
    assert net.nodes[3].data() == net.nodes[1].data()


def test_progress_moves_probe_replicate_snapshot():
    """A new leader probes each follower one append at a time, switches to
    pipelined replication after the first success, and to snapshot state when
    the follower needs compacted entries. Reference: thesis §3.5, §5.1"""
    net = Network((1, 2, 3), compact_threshold=10, compact_keep=2, auto_report_snapshot=False)
    net.nodes[1].rn.campaign()
    net.ignore(MsgType.MsgAppResp)
    net.stabilize()
    assert net.state(1) == Leader
    assert {p.state for i, p in net.status(1).progress.items() if i != 1} == {"probe"}
    net.recover()
    net.tick(2)
    assert {p.state for i, p in net.status(1).progress.items() if i != 1} == {"replicate"}
    net.isolate(3)
    for i in range(30):
        net.propose(1, b"e%d" % i)
    net.recover()
    net.ignore(MsgType.MsgSnap)
    net.tick(2)
    assert net.status(1).progress[3].state == "snapshot"


def test_report_unreachable_moves_replicating_follower_to_probe():
    """report_unreachable tells the leader its last append may be lost: a
    replicating follower goes back to probing. Reference: thesis §3.5"""
    net = Network((1, 2, 3))
    net.elect(1)
    net.propose(1, b"x")
    assert net.status(1).progress[2].state == "replicate"
    net.nodes[1].rn.report_unreachable(2)
    assert net.status(1).progress[2].state == "probe"
    assert net.status(1).progress[3].state == "replicate"
    net.propose(1, b"y")                           # the next acknowledged append resumes it
    assert net.status(1).progress[2].state == "replicate"


# --- Ready and persistence ----------------------------------------------------------------------

def test_must_sync_only_for_entries_term_or_vote():
    """Term, vote and log entries must be on stable storage before messages go
    out (must_sync); a Ready that only advances commit need not be synced.
    Reference: thesis §3.8"""
    rn, st = new_node(1, make_storage(hs=HardState(term=1, commit=1)))
    rn.step(Message(type=MsgType.MsgApp, frm=2, to=1, term=1, log_term=1, index=1,
                    entries=[Entry(term=1, index=2), Entry(term=1, index=3)]))
    rd = persist(rn, st)
    assert rd.entries and rd.must_sync
    rn.step(Message(type=MsgType.MsgHeartbeat, frm=2, to=1, term=1, commit=3))
    rd = persist(rn, st)
    assert rd.hard_state.commit == 3 and not rd.entries and rd.must_sync is False
    rn.step(Message(type=MsgType.MsgVote, frm=3, to=1, term=2, log_term=1, index=3))
    rd = persist(rn, st)
    assert rd.hard_state.vote == 3 and rd.must_sync
    assert not rn.has_ready()


def test_restarted_node_resumes_from_storage():
    """A restarted node reloads term, vote, commit and log from stable storage,
    does not re-apply what its state machine applied, and rejoins.
    Reference: thesis §3.8"""
    net = Network((1, 2, 3))
    net.elect(1)
    for i in range(5):
        net.propose(1, b"r%d" % i)
    before = net.status(2)
    net.restart(2)
    after = net.status(2)
    assert (after.term, after.vote, after.commit) == (before.term, before.vote, before.commit)
    net.propose(1, b"later")
    assert net.nodes[2].data() == [b"r%d" % i for i in range(5)] + [b"later"]


def test_bootstrap_only_on_empty_storage():
    """bootstrap() writes the initial membership as committed term-1 conf
    changes, and refuses a storage that already has a log. Reference: thesis §4.1"""
    st = MemoryStorage()
    rn = RawNode(CoreConfig(id=1, storage=st, election_tick=ET, heartbeat_tick=1, seed=1))
    rn.bootstrap([1, 2, 3])
    rd = persist(rn, st)
    assert [(e.term, e.index, e.type) for e in rd.entries] == [
        (1, i, EntryType.EntryConfChange) for i in (1, 2, 3)]
    assert [ConfChange.decode(e.data).node_id for e in rd.committed_entries] == [1, 2, 3]
    rn2 = RawNode(CoreConfig(id=1, storage=st, election_tick=ET, heartbeat_tick=1, seed=1))
    with pytest.raises(RaftError):
        rn2.bootstrap([1, 2, 3])
