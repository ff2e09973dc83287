"""An in-memory cluster of RawNodes (etcd: raft_test.go `network`, rafttest).

Each node runs the application loop of etcd's doc.go on a MemoryStorage:

    rd = rn.ready()
    if rd.snapshot: storage.apply_snapshot(rd.snapshot); restore the state machine
    storage.append(rd.entries); if rd.hard_state: storage.set_hard_state(rd.hard_state)
    queue rd.messages on the network
    apply rd.committed_entries (conf changes through rn.apply_conf_change)
    rn.advance(rd)

The state machine of a node is the list of (index, term, data) of the normal
entries it applied, plus the ConfState as of its applied index; snapshots
carry it (pickled). `restart()` rebuilds the RawNode from storage either the
raftexample way (state machine from the newest snapshot, applied = its
index, committed entries replayed) or, with keep_state=True, as a durable
state machine that snapshots at its applied index first. A new member added
by a conf change is started empty (a joining node); messages to unknown or
stopped nodes are lost.

Delivery is explicit: nothing moves until `deliver()`/`stabilize()`, and the
filters (`drop`, `cut`, `isolate`, `ignore`) decide with a seeded RNG which
messages are lost. With `check_safety=True` (the default) every Ready is
checked against the Raft safety properties (thesis §3.6.3, Figure 3.2):
election safety, leader append-only, log matching, leader completeness and
state machine safety,
plus linearizable ReadIndex (a read index is at least every index committed
before the read was requested, thesis §6.4); a violation raises
SafetyViolationError at the step that caused it.
"""
from __future__ import annotations

import pickle
import random
from collections import deque

from easyraft._core.codec import decode_message, encode_message
from easyraft.core import (
    ConfChange,
    ConfChangeType,
    ConfState,
    CoreConfig,
    EntryType,
    MemoryStorage,
    MsgType,
    ProposalDroppedError,
    RawNode,
    StateType,
    StepPeerNotFoundError,
)


class SafetyViolationError(AssertionError):
    """A Raft safety property does not hold."""


class SafetyChecker:
    """Global bookkeeping of what every node ever did, to check invariants."""

    def __init__(self):
        self.leaders = {}          # term -> leader id (election safety)
        self.log_entries = {}      # (index, term) -> (type, data, term of index-1) (log matching)
        self.committed = {}        # index -> term, every index any node reported committed
        self.applied = {}          # index -> (term, type, data) (state machine safety)
        self.read_floor = {}       # read ctx -> highest index committed when it was requested
        self.reads_served = 0

    def on_leader(self, node_id, term):
        other = self.leaders.setdefault(term, node_id)
        if other != node_id:
            raise SafetyViolationError(f"election safety: nodes {other} and {node_id} both lead "
                                       f"term {term}")

    def on_persisted(self, node_id, entries, prev_term):
        for e in entries:
            key = (e.index, e.term)
            got = (e.type, e.data, prev_term)
            want = self.log_entries.setdefault(key, got)
            if want != got:
                raise SafetyViolationError(
                    f"log matching: node {node_id} has index {e.index} term {e.term} = "
                    f"{got!r}, another node has {want!r}")
            prev_term = e.term

    def on_committed(self, node_id, index, term):
        want = self.committed.setdefault(index, term)
        if want != term:
            raise SafetyViolationError(f"node {node_id} committed index {index} at term {term}, "
                                  f"another node committed it at term {want}")

    def on_read_request(self, ctx):
        """A read is requested now: it must observe everything committed so far."""
        self.read_floor[ctx] = max(self.committed, default=0)

    def on_read_state(self, node_id, rs):
        self.reads_served += 1
        floor = self.read_floor.get(rs.request_ctx)
        if floor is not None and rs.index < floor:
            raise SafetyViolationError(
                f"linearizability: node {node_id} got read index {rs.index} for "
                f"{rs.request_ctx!r}, but index {floor} was committed before the request")

    def on_applied(self, node_id, index, term, typ, data):
        want = self.applied.setdefault(index, (term, typ, data))
        if want != (term, typ, data):
            raise SafetyViolationError(
                f"state machine safety: node {node_id} applied {(term, typ, data)!r} at index "
                f"{index}, another node applied {want!r}")


class Node:
    """One member: durable storage + state machine, and a volatile RawNode."""

    def __init__(self, net, node_id, storage):
        self.net = net
        self.id = node_id
        self.storage = storage
        self.rn = None
        self.applied_index = 0
        self.applied = []          # [(index, term, data)] of applied normal entries with data
        self.conf_state = ConfState()
        self.read_states = []
        self.conf_changes = []     # ConfChanges applied, in order
        self.removed = False       # applied its own removal: stopped for good
        self.leading = False       # leader as of its last Ready
        self.leading_term = 0      # term as of its last Ready with a hard state
        self.restarts = 0

    # -- lifecycle ------------------------------------------------------------

    def start(self):
        self.rn = RawNode(self.net.config(self.id, self.storage, applied=self.applied_index,
                                          seed=self.net.seed * 1000 + self.id * 7 + self.restarts))

    @property
    def running(self):
        return self.rn is not None

    def stop(self):
        """Crash: the RawNode and everything not in storage is gone."""
        self.rn = None
        self.leading = False
        self.read_states = []

    def restart(self, keep_state=False):
        """Crash and start a fresh RawNode over the same storage.

        By default the application rebuilds its state machine from the newest
        snapshot in storage and the RawNode replays the committed entries
        after it (applied = snapshot index; raftexample, DESIGN §2.1). With
        keep_state=True the state machine is durable on its own: the node
        first records a snapshot at its applied index (so that the membership
        it applied is in storage, where the core reads it on restart) and
        restarts with applied = that index.
        """
        self.stop()
        self.restarts += 1
        st = self.storage
        if keep_state:
            if self.applied_index > st.snapshot().metadata.index:
                st.create_snapshot(self.applied_index, self.conf_state, self.snapshot_data())
        else:
            snap = st.snapshot()
            self.applied, self.conf_state = self.unpack(snap.data)
            self.applied_index = snap.metadata.index
        self.start()

    # -- the application loop -----------------------------------------------------

    def process_ready(self):
        """Run one Ready cycle if there is one; return the Ready or None."""
        rn = self.rn
        if rn is None or not rn.has_ready():
            return None
        rd = rn.ready()
        checker = self.net.checker
        storage = self.storage
        if rd.snapshot is not None:
            storage.apply_snapshot(rd.snapshot)
            self.restore(rd.snapshot)
        if rd.entries:
            if (checker is not None and self.leading and rd.soft_state is None
                    and (rd.hard_state is None or rd.hard_state.term == self.leading_term)
                    and rd.entries[0].index <= storage.last_index()):
                raise SafetyViolationError(
                    f"leader append-only: leader {self.id} overwrites its log from index "
                    f"{rd.entries[0].index} (last {storage.last_index()})")
            storage.append(rd.entries)
            if checker is not None:
                prev = rd.entries[0].index - 1
                checker.on_persisted(self.id, rd.entries, storage.term(prev))
        if rd.hard_state is not None:
            old_commit = storage.initial_state()[0].commit
            storage.set_hard_state(rd.hard_state)
            if checker is not None and rd.hard_state.commit > old_commit:
                lo = max(old_commit + 1, storage.first_index() - 1)
                for i in range(lo, rd.hard_state.commit + 1):
                    checker.on_committed(self.id, i, storage.term(i))
        if rd.soft_state is not None:
            self.leading = rd.soft_state.raft_state == StateType.StateLeader
        if rd.hard_state is not None:
            self.leading_term = rd.hard_state.term
        if rd.soft_state is not None and rd.soft_state.raft_state == StateType.StateLeader:
            term = rn.status().term
            if checker is not None:
                checker.on_leader(self.id, term)
                self.check_leader_completeness(term)
        for m in rd.messages:
            self.net.queue.append(m)
        self.read_states.extend(rd.read_states)
        if checker is not None:
            for rs in rd.read_states:
                checker.on_read_state(self.id, rs)
        for e in rd.committed_entries:
            self.apply(e)
        rn.advance(rd)
        if self.net.record:
            self.net.readies.append((self.id, rd))
        if self.removed and self.net.stop_removed:
            self.stop()
        return rd

    def apply(self, e):
        if e.index != self.applied_index + 1:
            raise SafetyViolationError(f"node {self.id} applied index {e.index} after "
                                       f"{self.applied_index}")
        if self.net.checker is not None:
            self.net.checker.on_applied(self.id, e.index, e.term, e.type, e.data)
        self.applied_index = e.index
        if e.type == EntryType.EntryConfChange:
            cc = ConfChange.decode(e.data)
            self.conf_changes.append(cc)
            self.conf_state = self.rn.apply_conf_change(cc)
            self.net.on_conf_change_applied(self, cc)
        elif e.data:
            self.applied.append((e.index, e.term, e.data))
        self.net.maybe_compact(self)

    def restore(self, snap):
        md = snap.metadata
        entries, conf_state = self.unpack(snap.data)
        if self.net.checker is not None:
            for index, term, data in entries:
                self.net.checker.on_applied(self.id, index, term, EntryType.EntryNormal, data)
        if md.conf_state != conf_state:
            raise SafetyViolationError(f"snapshot at {md.index} carries {md.conf_state!r} but its "
                                  f"state machine was at {conf_state!r}")
        self.applied = list(entries)
        self.applied_index = md.index
        self.conf_state = md.conf_state
        for nid in md.conf_state.voters + md.conf_state.learners:
            self.net.ensure_node(nid)

    @staticmethod
    def unpack(data):
        return pickle.loads(data) if data else ([], ConfState())

    def snapshot_data(self):
        return pickle.dumps((self.applied, self.conf_state))

    def check_leader_completeness(self, term):
        """A new leader's log holds every entry committed so far (thesis §3.6.3)."""
        st = self.storage
        snap_index = st.snapshot().metadata.index
        last = st.last_index()
        for index, cterm in self.net.checker.committed.items():
            if index <= snap_index:
                continue
            if index > last or st.term(index) != cterm:
                raise SafetyViolationError(
                    f"leader completeness: node {self.id} leads term {term} without committed "
                    f"entry {index} (term {cterm})")

    # -- views -------------------------------------------------------------------

    def data(self):
        """Payloads applied to this node's state machine, in log order."""
        return [d for _, _, d in self.applied]

    def log(self):
        """(index, term) of the entries in storage after its snapshot."""
        st = self.storage
        lo, hi = st.first_index(), st.last_index()
        return [(e.index, e.term) for e in st.entries(lo, hi + 1)] if hi >= lo else []


class Network:
    """N RawNodes exchanging messages through an explicit, filterable queue."""

    def __init__(self, ids=(1, 2, 3), *, seed=0, bootstrap=True, storages=None, check_safety=True,
                 compact_threshold=None, compact_keep=5, auto_report_snapshot=True,
                 stop_removed=True, record=True, wire=True, **config):
        self.seed = seed
        self.rng = random.Random(seed)
        self.cfg = dict(election_tick=10, heartbeat_tick=1, max_size_per_msg=1 << 20,
                        max_inflight_msgs=256, pre_vote=True, check_quorum=True)
        self.cfg.update(config)
        self.nodes = {}
        self.queue = deque()
        self.checker = SafetyChecker() if check_safety else None
        self.compact_threshold = compact_threshold
        self.compact_keep = compact_keep
        self.auto_report_snapshot = auto_report_snapshot
        self.dropped_pairs = {}      # (frm, to) -> probability of loss
        self.ignored_types = set()
        self.filters = []            # callables m -> True to lose m
        self.stop_removed = stop_removed
        self.record = record
        self.wire = wire
        self.delivered = []          # every delivered message, in order (for assertions)
        self.dropped = []            # every message lost to a filter
        self.readies = []            # (id, Ready) of every processed Ready
        self.auto_join = True
        for i in ids:
            storage = storages[i] if storages is not None else MemoryStorage()
            node = Node(self, i, storage)
            self.nodes[i] = node
            if storages is not None:
                _hs, cs = storage.initial_state()
                node.conf_state = cs
                node.applied_index = storage.snapshot().metadata.index
            node.start()
            if bootstrap and storages is None:
                node.rn.bootstrap(list(ids))
        self.settle()

    def config(self, node_id, storage, applied=0, seed=0):
        return CoreConfig(id=node_id, storage=storage, applied=applied, seed=seed, **self.cfg)

    # -- node management -------------------------------------------------------------

    def ensure_node(self, node_id):
        """Start a joining node (empty storage, not bootstrapped) if unknown."""
        if node_id not in self.nodes and self.auto_join:
            node = Node(self, node_id, MemoryStorage())
            self.nodes[node_id] = node
            node.start()
        return self.nodes.get(node_id)

    def on_conf_change_applied(self, node, cc):
        if cc.type in (ConfChangeType.ConfChangeAddNode, ConfChangeType.ConfChangeAddLearnerNode):
            self.ensure_node(cc.node_id)
            st = node.storage
            snap_index = st.snapshot().metadata.index
            if snap_index > 0 and node.applied_index > snap_index:
                # A leader whose log is compacted catches a new member up with
                # its newest snapshot, and the member refuses one whose
                # ConfState does not include it (etcd: "attempted to restore
                # snapshot but it is not in the ConfState"). So, as DESIGN §3
                # requires, take a snapshot that includes the new member.
                st.create_snapshot(node.applied_index, node.conf_state, node.snapshot_data())
        elif cc.type == ConfChangeType.ConfChangeRemoveNode and cc.node_id == node.id:
            node.removed = True

    def maybe_compact(self, node):
        if self.compact_threshold is None:
            return
        st = node.storage
        if node.applied_index - st.first_index() < self.compact_threshold:
            return
        if node.applied_index > st.snapshot().metadata.index:
            st.create_snapshot(node.applied_index, node.conf_state, node.snapshot_data())
        st.compact(node.applied_index - self.compact_keep)

    def restart(self, node_id, keep_state=False):
        self.nodes[node_id].restart(keep_state)
        self.settle()

    def stop(self, node_id):
        self.nodes[node_id].stop()

    def start(self, node_id, keep_state=False):
        """Start a stopped node again: a restart (see Node.restart)."""
        self.nodes[node_id].restart(keep_state)
        self.settle()

    def rn(self, node_id):
        return self.nodes[node_id].rn

    # -- filters -------------------------------------------------------------------

    def drop(self, frm, to, prob=1.0):
        """Lose messages from frm to to with probability prob (seeded)."""
        self.dropped_pairs[(frm, to)] = prob

    def cut(self, a, b):
        self.drop(a, b, 1.0)
        self.drop(b, a, 1.0)

    def isolate(self, node_id):
        for other in self.nodes:
            if other != node_id:
                self.cut(node_id, other)

    def ignore(self, msg_type):
        self.ignored_types.add(msg_type)

    def recover(self):
        self.dropped_pairs.clear()
        self.ignored_types.clear()
        self.filters.clear()

    def lost(self, m):
        if m.type in self.ignored_types:
            return True
        for f in self.filters:
            if f(m):
                return True
        prob = self.dropped_pairs.get((m.frm, m.to), 0.0)
        return prob > 0 and (prob >= 1.0 or self.rng.random() < prob)

    # -- moving messages -------------------------------------------------------------

    def process_readies(self):
        """Run a Ready cycle on every running node that has one; return how many ran."""
        n = 0
        for node in list(self.nodes.values()):
            if node.process_ready() is not None:
                n += 1
        return n

    def settle(self, limit=10_000):
        """Process Readies (queueing their messages, delivering none) until none is left."""
        for _ in range(limit):
            if not self.process_readies():
                return
        raise AssertionError("nodes kept producing Readies")

    def deliver_one(self, m, process=True):
        """Step one message into its recipient (through the filters) and, if
        process, run the Readies that causes."""
        node = self.nodes.get(m.to)
        lost = node is None or not node.running or self.lost(m)
        if lost:
            if self.record:
                self.dropped.append(m)
        else:
            if self.record:
                self.delivered.append(m)
            if self.wire:
                # What a transport hands over: a fresh decoded copy, never the
                # sender's objects (the core stamps proposals in place).
                m = decode_message(encode_message(m))
            try:
                node.rn.step(m)
            except (ProposalDroppedError, StepPeerNotFoundError):
                # A forwarded proposal refused by its recipient, or a response
                # from a node no longer in the configuration: lost, as in etcd.
                pass
            if process:
                node.process_ready()
        if m.type == MsgType.MsgSnap and self.auto_report_snapshot:
            sender = self.nodes.get(m.frm)
            if sender is not None and sender.running:
                # The application reports the fate of a snapshot it sent.
                sender.rn.report_snapshot(m.to, ok=not lost)
                if process:
                    sender.process_ready()
        return not lost

    def deliver(self, max_msgs=None):
        """Deliver the queued messages (and those they cause) until none are left."""
        count = 0
        while self.queue:
            if max_msgs is not None and count >= max_msgs:
                break
            self.deliver_one(self.queue.popleft())
            count += 1
        return count

    def deliver_random(self, rng, k, dup_prob=0.0):
        """Deliver up to k queued messages picked at random (reordering), each
        delivered twice with probability dup_prob (duplication)."""
        for _ in range(min(k, len(self.queue))):
            i = rng.randrange(len(self.queue))
            self.queue.rotate(-i)
            m = self.queue.popleft()
            self.queue.rotate(i)
            self.deliver_one(m)
            if dup_prob and rng.random() < dup_prob:
                self.deliver_one(m)

    def tick_nodes(self, ids=None):
        """Tick the running nodes once and run their Readies, delivering nothing."""
        for node_id in (ids if ids is not None else list(self.nodes)):
            node = self.nodes[node_id]
            if node.running:
                node.rn.tick()
        self.settle()

    def take(self, pred=lambda m: True):
        """Remove and return the queued messages matching pred (for hand delivery)."""
        taken = [m for m in self.queue if pred(m)]
        self.queue = deque(m for m in self.queue if not pred(m))
        return taken

    def stabilize(self, limit=100_000):
        """Process Readies and deliver messages until the cluster is quiescent."""
        steps = 0
        while True:
            ran = self.process_readies()
            if not self.queue and not ran:
                return steps
            steps += self.deliver()
            if steps > limit:
                raise AssertionError(f"cluster did not quiesce within {limit} messages")

    def send(self, *msgs):
        """etcd's network.send: step msgs in and stabilize."""
        self.queue.extend(msgs)
        return self.stabilize()

    def tick(self, n=1, ids=None):
        """Tick the running nodes n times, stabilizing after each tick."""
        for _ in range(n):
            for node_id in (ids if ids is not None else list(self.nodes)):
                node = self.nodes[node_id]
                if node.running:
                    node.rn.tick()
            self.stabilize()

    # -- conveniences ------------------------------------------------------------------

    def campaign(self, node_id):
        self.nodes[node_id].rn.campaign()
        self.stabilize()

    def propose(self, node_id, data):
        self.nodes[node_id].rn.propose(data)
        self.stabilize()

    def propose_conf_change(self, node_id, cc_type, target, context=b""):
        self.nodes[node_id].rn.propose_conf_change(
            ConfChange(type=cc_type, node_id=target, context=context))
        self.stabilize()

    def status(self, node_id):
        return self.nodes[node_id].rn.status()

    def state(self, node_id):
        return self.nodes[node_id].rn.status().raft_state

    def term(self, node_id):
        return self.nodes[node_id].rn.status().term

    def leader(self):
        """The running leader with the highest term, or None."""
        best = None
        for node in self.nodes.values():
            if node.running:
                st = node.rn.status()
                if st.raft_state == StateType.StateLeader and (best is None or st.term > best[0]):
                    best = (st.term, node.id)
        return None if best is None else best[1]

    def elect(self, node_id, max_rounds=5):
        """Make node_id leader by campaigning (PreVote and CheckQuorum permitting)."""
        for _ in range(max_rounds):
            self.campaign(node_id)
            if self.state(node_id) == StateType.StateLeader:
                return
            # A follower that heard from a leader recently ignores votes (leader lease):
            # let that lease run out, then try again.
            self.tick(self.cfg["election_tick"], ids=[i for i in self.nodes if i != node_id])
        raise AssertionError(f"node {node_id} could not be elected: {self.status(node_id)!r}")

    def check_logs_match(self):
        """All running nodes agree on every (index, term) they share, and on the prefix."""
        logs = {i: dict(n.log()) for i, n in self.nodes.items() if n.running}
        ids = sorted(logs)
        for a in ids:
            for b in ids:
                if a >= b:
                    continue
                common = sorted(set(logs[a]) & set(logs[b]))
                same = [i for i in common if logs[a][i] == logs[b][i]]
                if same:
                    top = same[-1]
                    for i in common:
                        if i <= top and logs[a][i] != logs[b][i]:
                            raise SafetyViolationError(
                                f"log matching: nodes {a} and {b} agree at {top} but differ at {i}")
