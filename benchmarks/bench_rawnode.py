"""RawNode throughput: a cluster of RawNodes in one process committing 512-byte
proposals (issue 2, 5a). The core alone: no codec, no disk, no sockets.

Each round the leader gets `batch` proposals, then every node runs the
Ready cycle (persist to MemoryStorage, hand messages over, apply, advance)
until the cluster is quiet, i.e. the batch is committed and applied on every
node. The log is compacted as it grows. The figure is entries/s committed
and applied on all nodes.

Same-run baselines: batch size 1 on the same 3 nodes (`baseline`), and a
sweep over batch sizes and voter counts (STYLE 8.5). etcd's raft in Go,
driven the same way with batches of 64, commits ~166,000 entries/s on one
core of this kind of machine; the target is 200,000.
"""
import pytest

from easyraft.core import (
    ConfChange,
    CoreConfig,
    EntryType,
    MemoryStorage,
    RawNode,
    StateType,
)

PAYLOAD = b"x" * 512
ENTRIES_PER_OP = 2048           # proposals committed per timed call
COMPACT_EVERY, COMPACT_KEEP = 4096, 256


class Cluster:
    def __init__(self, n):
        self.ids = list(range(1, n + 1))
        self.storages = {i: MemoryStorage() for i in self.ids}
        self.nodes = {}
        for i in self.ids:
            rn = RawNode(CoreConfig(id=i, storage=self.storages[i], election_tick=10,
                                    heartbeat_tick=1, max_size_per_msg=1 << 20,
                                    max_inflight_msgs=256, pre_vote=True, check_quorum=True,
                                    seed=i))
            rn.bootstrap(self.ids)
            self.nodes[i] = rn
        self.applied = {i: 0 for i in self.ids}      # normal entries with data applied
        self.pump()
        self.nodes[1].campaign()
        self.pump()
        assert self.nodes[1].status().raft_state == StateType.StateLeader

    def pump(self):
        """Ready cycles and message hand-over until every node is quiet."""
        nodes, storages, applied = self.nodes, self.storages, self.applied
        while True:
            msgs = []
            for i, rn in nodes.items():
                if not rn.has_ready():
                    continue
                rd = rn.ready()
                st = storages[i]
                if rd.entries:
                    st.append(rd.entries)
                if rd.hard_state is not None:
                    st.set_hard_state(rd.hard_state)
                msgs.extend(rd.messages)
                ents = rd.committed_entries
                if ents:
                    n = 0
                    for e in ents:
                        if e.type == EntryType.EntryConfChange:
                            rn.apply_conf_change(ConfChange.decode(e.data))
                        elif e.data:
                            n += 1
                    applied[i] += n
                    last = ents[-1].index
                    if last - st.first_index() > COMPACT_EVERY:
                        st.compact(last - COMPACT_KEEP)
                rn.advance(rd)
            if not msgs:
                return
            for m in msgs:
                nodes[m.to].step(m)

    def commit(self, total, batch, use_propose_batch=False):
        leader = self.nodes[1]
        start = dict(self.applied)
        done = 0
        while done < total:
            k = min(batch, total - done)
            if use_propose_batch:
                leader.propose_batch([PAYLOAD] * k)
            else:
                for _ in range(k):
                    leader.propose(PAYLOAD)
            self.pump()
            done += k
        for i in self.ids:
            assert self.applied[i] - start[i] == total, (i, self.applied[i] - start[i])


GROUP = "rawnode 512 B proposals, committed+applied on all nodes"


def _bench(benchmark, figures, name, n, batch, use_propose_batch=False, total=ENTRIES_PER_OP):
    cluster = Cluster(n)
    cluster.commit(total, batch, use_propose_batch)      # warm up (and check) once
    benchmark.pedantic(cluster.commit, args=(total, batch, use_propose_batch), rounds=15,
                       iterations=1, warmup_rounds=1)
    figures(GROUP, name, benchmark, total, "entries")
    # The log stayed compacted: no node holds more than a compaction window.
    for st in cluster.storages.values():
        assert st.last_index() - st.first_index() < COMPACT_EVERY + 2 * batch + 8


@pytest.mark.benchmark(group=GROUP)
def test_rawnode_baseline_3_nodes_batch_1(benchmark, figures):
    _bench(benchmark, figures, "baseline: 3 nodes, batch 1", 3, 1, total=512)


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("batch", [8, 64, 256])
def test_rawnode_3_nodes_batches(benchmark, figures, batch):
    _bench(benchmark, figures, f"3 nodes, batch {batch} (propose x{batch})", 3, batch)


@pytest.mark.benchmark(group=GROUP)
def test_rawnode_3_nodes_propose_batch_64(benchmark, figures):
    _bench(benchmark, figures, "3 nodes, batch 64 (propose_batch)", 3, 64, use_propose_batch=True)


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("voters", [1, 5])
def test_rawnode_voters_batch_64(benchmark, figures, voters):
    _bench(benchmark, figures, f"{voters} node(s), batch 64 (propose x64)", voters, 64)
