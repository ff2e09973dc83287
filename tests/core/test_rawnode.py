"""RawNode API edges (etcd: rawnode_test.go, raft_test.go corner cases) and the
guard that the whole core is compiled."""
import importlib

import pytest

from easyraft.core import (
    ConfChange,
    ConfChangeType,
    ConfState,
    CoreConfig,
    HardState,
    MemoryStorage,
    Message,
    MsgType,
    RaftError,
    RawNode,
    ReadState,
    StateType,
    StepLocalMsgError,
)

from .network import Network
from .test_raft_paper import drain, make_storage, new_node, persist

CORE_MODULES = ["types", "codec", "quorum", "inflights", "progress", "confchange", "storage",
                "log_unstable", "log", "read_only", "raft", "rawnode"]


@pytest.mark.parametrize("name", CORE_MODULES)
def test_core_module_is_compiled(name):
    mod = importlib.import_module(f"easyraft._core.{name}")
    assert mod.__file__.endswith((".so", ".pyd")), mod.__file__


def test_rawnode_public_face_matches_design():
    import easyraft.core as core
    for name in ["RawNode", "CoreConfig", "MemoryStorage", "Message", "MsgType", "Entry",
                 "EntryType", "HardState", "SoftState", "Snapshot", "SnapshotMetadata",
                 "ConfState", "ConfChange", "ConfChangeType", "StateType", "Ready", "ReadState",
                 "ProposalDroppedError", "RaftError", "CompactedError", "UnavailableError"]:
        assert name in core.__all__ and hasattr(core, name), name
    for name in ["tick", "campaign", "propose", "propose_conf_change", "step", "has_ready",
                 "ready", "advance", "apply_conf_change", "transfer_leader", "read_index",
                 "report_unreachable", "report_snapshot", "status", "bootstrap"]:
        assert callable(getattr(RawNode, name)), name
    rn, _ = new_node(1)
    st = rn.status()
    for name in ["id", "term", "vote", "commit", "lead", "raft_state", "applied",
                 "lead_transferee", "voters", "learners", "progress"]:
        assert hasattr(st, name), name


@pytest.mark.parametrize("kw", [dict(id=0), dict(heartbeat_tick=0), dict(election_tick=1),
                                dict(max_inflight_msgs=0), dict(storage=None)],
                         ids=lambda kw: next(iter(kw)))
def test_core_config_rejects_invalid_values(kw):
    params = dict(id=1, election_tick=10, heartbeat_tick=1, storage=MemoryStorage())
    params.update(kw)
    with pytest.raises((ValueError, TypeError)):
        CoreConfig(**params)


def test_restart_with_applied_beyond_commit_is_refused():
    st = make_storage(terms=(1, 1), hs=HardState(term=1, commit=2))
    with pytest.raises(RaftError):
        RawNode(CoreConfig(id=1, storage=st, election_tick=10, heartbeat_tick=1, applied=10))


@pytest.mark.parametrize("t", [MsgType.MsgHup, MsgType.MsgBeat, MsgType.MsgUnreachable,
                               MsgType.MsgSnapStatus, MsgType.MsgCheckQuorum],
                         ids=lambda t: t.name)
def test_step_refuses_local_messages(t):
    rn, _ = new_node(1)
    with pytest.raises(StepLocalMsgError):
        rn.step(Message(type=t, frm=2, to=1, term=1))
    assert rn.status().raft_state == StateType.StateFollower


@pytest.mark.parametrize("cc,want", [
    (ConfChange(type=ConfChangeType.ConfChangeAddNode, node_id=0), ConfState([1, 2, 3])),
    (ConfChange(type=ConfChangeType.ConfChangeRemoveNode, node_id=9), ConfState([1, 2, 3])),
    (ConfChange(type=ConfChangeType.ConfChangeAddNode, node_id=2), ConfState([1, 2, 3])),
    (ConfChange(type=ConfChangeType.ConfChangeAddNode, node_id=4), ConfState([1, 2, 3, 4])),
    (ConfChange(type=ConfChangeType.ConfChangeAddLearnerNode, node_id=4),
     ConfState([1, 2, 3], [4])),
    (ConfChange(type=ConfChangeType.ConfChangeAddLearnerNode, node_id=2), ConfState([1, 3], [2])),
    (ConfChange(type=ConfChangeType.ConfChangeRemoveNode, node_id=3), ConfState([1, 2])),
    (ConfChange(type=ConfChangeType.ConfChangeUpdateNode, node_id=2, context=b"u"),
     ConfState([1, 2, 3])),
], ids=["add-zero-ignored", "remove-unknown", "add-existing", "add", "add-learner", "demote",
        "remove", "update"])
def test_apply_conf_change_table(cc, want):
    rn, _ = new_node(1)
    assert rn.apply_conf_change(cc) == want
    st = rn.status()
    assert (tuple(st.voters), tuple(st.learners)) == (want.voters, want.learners)


def test_apply_conf_change_never_removes_the_last_voter():
    rn, _ = new_node(1, make_storage(voters=(1,)))
    cs = rn.apply_conf_change(ConfChange(type=ConfChangeType.ConfChangeRemoveNode, node_id=1))
    assert cs == ConfState([1])


def test_learner_promoted_to_voter_counts_for_quorum():
    net = Network((1, 2, 3))
    net.elect(1)
    net.propose_conf_change(1, ConfChangeType.ConfChangeAddLearnerNode, 4)
    net.tick(2)
    net.propose_conf_change(1, ConfChangeType.ConfChangeAddNode, 4)
    assert net.nodes[1].conf_state == ConfState([1, 2, 3, 4])
    net.tick(2)
    assert net.nodes[4].conf_state == ConfState([1, 2, 3, 4])
    net.cut(1, 2)
    net.cut(1, 3)
    net.propose(1, b"needs 3 of 4")
    assert net.nodes[1].data() == []
    net.recover()
    net.tick(2)
    assert net.nodes[4].data() == [b"needs 3 of 4"]


@pytest.mark.parametrize("target", [1, 4, 9], ids=["self", "learner", "unknown"])
def test_transfer_leader_ignored_for_self_learner_or_unknown(target):
    net = Network((1, 2, 3))
    net.elect(1)
    net.propose_conf_change(1, ConfChangeType.ConfChangeAddLearnerNode, 4)
    net.tick(2)
    term = net.term(1)
    net.nodes[1].rn.transfer_leader(target)
    net.stabilize()
    assert net.status(1).lead_transferee == 0
    assert net.leader() == 1 and net.term(1) == term


def test_transfer_leader_requested_on_follower_is_forwarded():
    net = Network((1, 2, 3))
    net.elect(1)
    net.nodes[2].rn.transfer_leader(2)
    net.stabilize()
    assert net.leader() == 2


def test_read_index_waits_for_leader_to_commit_in_its_term():
    """A new leader does not know the commit index until its own no-op
    commits: reads requested before that are answered after it."""
    net = Network((1, 2, 3))
    net.ignore(MsgType.MsgAppResp)
    net.campaign(1)
    net.nodes[1].rn.read_index(b"early")
    net.stabilize()
    assert net.nodes[1].read_states == []
    net.recover()
    net.tick(2)
    assert net.nodes[1].read_states == [ReadState(index=net.status(1).commit, request_ctx=b"early")]


def test_read_index_single_node_is_immediate():
    net = Network((1,))
    net.campaign(1)
    net.nodes[1].rn.read_index(b"solo")
    net.stabilize()
    assert net.nodes[1].read_states == [ReadState(index=net.status(1).commit, request_ctx=b"solo")]


def test_has_ready_false_after_advance_and_ready_is_idempotent_when_empty():
    rn, st = new_node(1)
    assert not rn.has_ready()
    rn.campaign()
    assert rn.has_ready()
    drain(rn, st)
    assert not rn.has_ready()
    rd = rn.ready()
    assert (rd.soft_state, rd.hard_state, rd.snapshot) == (None, None, None)
    assert rd.entries == [] and rd.committed_entries == [] and rd.messages == []
    rn.advance(rd)
    assert not rn.has_ready()


def test_ready_reports_soft_state_changes_only():
    rn, st = new_node(1)
    rn.campaign()
    rd = persist(rn, st)
    assert rd.soft_state.raft_state == StateType.StateCandidate and rd.soft_state.lead == 0
    rn.step(Message(type=MsgType.MsgVoteResp, frm=2, to=1, term=rn.status().term))
    rd = persist(rn, st)
    assert rd.soft_state.raft_state == StateType.StateLeader and rd.soft_state.lead == 1
    rn.tick()
    rd = persist(rn, st)
    assert rd.soft_state is None


def test_status_progress_only_on_leader():
    net = Network((1, 2, 3))
    net.elect(1)
    net.propose(1, b"x")
    st = net.status(1)
    assert set(st.progress) == {1, 2, 3}
    last = st.last_index if hasattr(st, "last_index") else None
    for pr in st.progress.values():
        assert pr.state in ("probe", "replicate", "snapshot")
        if last is not None:
            assert pr.match == last and pr.next == last + 1
    assert net.status(2).progress == {}
    assert (net.status(2).lead, net.status(2).commit) == (1, st.commit)


def _bootstrapped_storage():
    st = MemoryStorage()
    rn = RawNode(CoreConfig(id=1, storage=st, election_tick=10, heartbeat_tick=1, seed=1))
    rn.bootstrap([1, 2, 3])
    rd = rn.ready()
    st.append(rd.entries)
    st.set_hard_state(rd.hard_state)
    cs = None
    for e in rd.committed_entries:
        cs = rn.apply_conf_change(ConfChange.decode(e.data))
    rn.advance(rd)
    return st, cs


def test_restart_replaying_from_snapshot_index_restores_membership():
    """The raftexample restart: applied = snapshot index (0 here), the
    committed conf changes come back in the first Ready and are re-applied."""
    st, _ = _bootstrapped_storage()
    rn = RawNode(CoreConfig(id=1, storage=st, election_tick=10, heartbeat_tick=1, seed=1))
    rd = rn.ready()
    assert [e.index for e in rd.committed_entries] == [1, 2, 3]
    for e in rd.committed_entries:
        rn.apply_conf_change(ConfChange.decode(e.data))
    rn.advance(rd)
    assert tuple(rn.status().voters) == (1, 2, 3)


def test_restart_with_applied_after_snapshot_at_applied_restores_membership():
    """A durable state machine restarts with applied = its index, having
    recorded a snapshot there: the membership comes from the snapshot and no
    entry is handed out again. (With applied beyond the newest snapshot and
    no snapshot taken, the core, like etcd, knows only the snapshot's
    membership: see the coretests report.)"""
    st, cs = _bootstrapped_storage()
    st.create_snapshot(3, cs, b"")
    rn = RawNode(CoreConfig(id=1, storage=st, election_tick=10, heartbeat_tick=1, seed=1,
                            applied=3))
    assert tuple(rn.status().voters) == (1, 2, 3)
    assert not rn.has_ready()
    rn.campaign()                                  # promotable: it campaigns (PreVote first)
    assert rn.status().raft_state == StateType.StatePreCandidate
