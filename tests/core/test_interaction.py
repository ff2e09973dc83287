"""Data-driven interaction tests (etcd: interaction_test.go + rafttest's
InteractionEnv), one script per file in tests/core/testdata/*.txt.

A script is a sequence of blocks:

    command arg ... key=value
    ----
    expected output (may be empty)
    <blank line>

and the output includes the core's own log lines (INFO and above), so a
change of behaviour shows up as a diff of what the nodes did and said.
Regenerate after an intended change with EASYRAFT_REWRITE=1 and review the
diff like code ("only commit the changes if you understand what caused
them").

Commands (each has an example in the scripts):
  add-nodes N [pre_vote=] [check_quorum=] [election_tick=3] [compact=N]  nodes 1..N, bootstrapped
  campaign ID / propose ID DATA / propose-conf-change ID TYPE NID [ctx=...]
  tick ID|all [n=1] / transfer-leader FROM TO / read-index ID CTX / report-unreachable ID TO
  process-ready ID      one Ready cycle of one node, its messages queued
  deliver-msgs [ID]     deliver the queued messages (to ID only, if given), once
  stabilize             process Readies and deliver messages until quiet
  isolate ID / cut A B / recover / restart ID
  status ID / raft-log ID / applied ID
"""
import os
import pathlib

import pytest

from easyraft.core import (
    ConfChange,
    ConfChangeType,
    EntryType,
    MsgType,
    ProposalDroppedError,
    StateType,
)

from .network import Network

TESTDATA = pathlib.Path(__file__).with_name("testdata")
REWRITE = os.environ.get("EASYRAFT_REWRITE") == "1"


class CaptureLogger:
    """A logging.Logger-like sink collecting the core's lines for the output."""

    def __init__(self):
        self.lines = []

    def _log(self, level, msg, *args):
        self.lines.append(f"{level} {msg % args if args else msg}")

    def debug(self, msg, *args, **kw):
        pass

    def info(self, msg, *args, **kw):
        self._log("INFO", msg, *args)

    def warning(self, msg, *args, **kw):
        self._log("WARN", msg, *args)

    warn = warning

    def error(self, msg, *args, **kw):
        self._log("ERROR", msg, *args)

    def critical(self, msg, *args, **kw):
        self._log("CRITICAL", msg, *args)

    def isEnabledFor(self, level):   # noqa: N802 - logging.Logger's name
        return level >= 20

    def take(self):
        out, self.lines = self.lines, []
        return out


def describe_entry(e):
    if e.type == EntryType.EntryConfChange:
        cc = ConfChange.decode(e.data)
        body = f"{ConfChangeType(cc.type).name} {cc.node_id}"
        if cc.context:
            body += f" {cc.context.decode(errors='replace')}"
        return f"{e.term}/{e.index} EntryConfChange {body}"
    return f"{e.term}/{e.index} EntryNormal {e.data.decode(errors='replace')!r}"


def describe_message(m):
    s = f"{m.frm}->{m.to} {MsgType(m.type).name} Term:{m.term} Log:{m.log_term}/{m.index}"
    if m.commit:
        s += f" Commit:{m.commit}"
    if m.reject:
        s += f" Rejected (Hint: {m.reject_hint})"
    if m.entries:
        s += " Entries:[" + ", ".join(describe_entry(e) for e in m.entries) + "]"
    if m.snapshot is not None:
        md = m.snapshot.metadata
        s += (f" Snapshot: Index:{md.index} Term:{md.term} "
              f"Voters:{list(md.conf_state.voters)} Learners:{list(md.conf_state.learners)}")
    if m.context:
        s += f" Context:{m.context.decode(errors='replace')!r}"
    return s


def describe_ready(rd):
    lines = [f"Ready MustSync={str(bool(rd.must_sync)).lower()}:"]
    if rd.soft_state is not None:
        lines.append(f"Lead:{rd.soft_state.lead} State:{StateType(rd.soft_state.raft_state).name}")
    if rd.hard_state is not None:
        hs = rd.hard_state
        lines.append(f"HardState Term:{hs.term} Vote:{hs.vote} Commit:{hs.commit}")
    if rd.entries:
        lines.append("Entries:")
        lines += [describe_entry(e) for e in rd.entries]
    if rd.snapshot is not None:
        md = rd.snapshot.metadata
        lines.append(f"Snapshot Index:{md.index} Term:{md.term} "
                     f"Voters:{list(md.conf_state.voters)}")
    if rd.committed_entries:
        lines.append("CommittedEntries:")
        lines += [describe_entry(e) for e in rd.committed_entries]
    if rd.messages:
        lines.append("Messages:")
        lines += [describe_message(m) for m in rd.messages]
    if rd.read_states:
        lines.append("ReadStates:")
        lines += [f"Index:{rs.index} Ctx:{rs.request_ctx.decode(errors='replace')!r}"
                  for rs in rd.read_states]
    return lines


class Env:
    def __init__(self):
        self.net = None
        self.logger = CaptureLogger()

    # -- helpers ---------------------------------------------------------------------

    def out_logs(self, out, indent="  "):
        out += [indent + line for line in self.logger.take()]

    def process_ready(self, node_id, out):
        node = self.net.nodes[node_id]
        if node.rn is None or not node.rn.has_ready():
            return False
        out.append(f"> {node_id} handling Ready")
        rd = node.process_ready()
        out += ["  " + line for line in describe_ready(rd)]
        self.out_logs(out)
        return True

    def deliver(self, out, to=None):
        net = self.net
        pending = [m for m in net.queue if to is None or m.to == to]
        net.queue = type(net.queue)(m for m in net.queue if not (to is None or m.to == to))
        by_node = {}
        for m in pending:
            by_node.setdefault(m.to, []).append(m)
        for node_id in sorted(by_node):
            out.append(f"> {node_id} receiving messages")
            for m in by_node[node_id]:
                delivered = net.deliver_one(m, process=False)
                out.append(("  " if delivered else "  DROPPED ") + describe_message(m))
                self.out_logs(out, "  ")
        return len(pending)

    # -- commands ----------------------------------------------------------------------

    def run(self, cmd, args, kw):
        out = []
        net = self.net
        if cmd == "add-nodes":
            # Example: add-nodes 3 pre_vote=false check_quorum=false
            n = int(args[0])
            flags = {k: kw[k] == "true" for k in ("pre_vote", "check_quorum") if k in kw}
            compact = int(kw["compact"]) if "compact" in kw else None
            self.net = Network(tuple(range(1, n + 1)), logger=self.logger,
                               election_tick=int(kw.get("election_tick", 3)),
                               compact_threshold=compact, compact_keep=1, **flags)
            self.net.queue.clear()
            out.append(f"nodes 1..{n} bootstrapped")
            self.out_logs(out, "")
        elif cmd == "campaign":
            # Example: campaign 1
            net.nodes[int(args[0])].rn.campaign()
            self.out_logs(out, "")
        elif cmd == "propose":
            # Example: propose 1 hello
            try:
                net.nodes[int(args[0])].rn.propose(args[1].encode())
            except ProposalDroppedError as exc:
                out.append(f"error: {exc}")
            self.out_logs(out, "")
        elif cmd == "propose-conf-change":
            # Example: propose-conf-change 1 ConfChangeAddNode 4 ctx=http://n4
            cc = ConfChange(type=ConfChangeType[args[1]], node_id=int(args[2]),
                            context=kw.get("ctx", "").encode())
            try:
                net.nodes[int(args[0])].rn.propose_conf_change(cc)
            except ProposalDroppedError as exc:
                out.append(f"error: {exc}")
            self.out_logs(out, "")
        elif cmd == "tick":
            # Example: tick all n=3
            ids = list(net.nodes) if args[0] == "all" else [int(args[0])]
            for _ in range(int(kw.get("n", 1))):
                for i in ids:
                    if net.nodes[i].running:
                        net.nodes[i].rn.tick()
            self.out_logs(out, "")
        elif cmd == "transfer-leader":
            # Example: transfer-leader 1 2
            net.nodes[int(args[0])].rn.transfer_leader(int(args[1]))
            self.out_logs(out, "")
        elif cmd == "read-index":
            # Example: read-index 1 ctx1
            net.nodes[int(args[0])].rn.read_index(args[1].encode())
            self.out_logs(out, "")
        elif cmd == "report-unreachable":
            # Example: report-unreachable 1 3
            net.nodes[int(args[0])].rn.report_unreachable(int(args[1]))
            self.out_logs(out, "")
        elif cmd == "process-ready":
            # Example: process-ready 1
            self.process_ready(int(args[0]), out)
        elif cmd == "deliver-msgs":
            # Example: deliver-msgs 2
            self.deliver(out, int(args[0]) if args else None)
        elif cmd == "stabilize":
            # Example: stabilize
            for _ in range(1000):
                ran = [self.process_ready(i, out) for i in sorted(net.nodes)]
                if not any(ran) and not net.queue:
                    break
                self.deliver(out)
            else:
                raise AssertionError("stabilize did not converge")
        elif cmd == "isolate":
            # Example: isolate 3
            net.isolate(int(args[0]))
        elif cmd == "cut":
            # Example: cut 1 2
            net.cut(int(args[0]), int(args[1]))
        elif cmd == "recover":
            # Example: recover
            net.recover()
        elif cmd == "restart":
            # Example: restart 2
            net.nodes[int(args[0])].restart()
            self.out_logs(out, "")
        elif cmd == "status":
            # Example: status 1
            st = net.status(int(args[0]))
            out.append(f"{st.id} {StateType(st.raft_state).name} term={st.term} vote={st.vote} "
                       f"commit={st.commit} lead={st.lead} voters={list(st.voters)} "
                       f"learners={list(st.learners)}")
            for pid in sorted(st.progress):
                pr = st.progress[pid]
                out.append(f"  {pid}: {pr.state} match={pr.match} next={pr.next}")
        elif cmd == "raft-log":
            # Example: raft-log 1
            st = net.nodes[int(args[0])].storage
            lo, hi = st.first_index(), st.last_index()
            ents = st.entries(lo, hi + 1) if hi >= lo else []
            out += [describe_entry(e) for e in ents] or ["log is empty"]
        elif cmd == "applied":
            # Example: applied 2
            out.append(repr([d.decode() for d in net.nodes[int(args[0])].data()]))
        else:
            raise ValueError(f"unknown command {cmd!r}")
        return out


def parse(text):
    """Yield (line_no, command line, expected output) blocks."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if not lines[i].strip() or lines[i].startswith("#"):
            i += 1
            continue
        start, cmd = i, lines[i]
        i += 1
        assert lines[i] == "----", f"line {i + 1}: expected ----"
        i += 1
        body = []
        while i < len(lines) and lines[i] != "":
            body.append(lines[i])
            i += 1
        yield start + 1, cmd, body


def run_script(path):
    env = Env()
    text = path.read_text()
    rewritten, mismatches = [], []
    for line_no, cmd_line, want in parse(text):
        parts = cmd_line.split()
        args = [p for p in parts[1:] if "=" not in p]
        kw = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        got = env.run(parts[0], args, kw)
        rewritten += [cmd_line, "----", *got, ""]
        if got != want:
            mismatches.append((line_no, cmd_line, want, got))
    if REWRITE:
        path.write_text("\n".join(rewritten))
        return []
    return mismatches


SCRIPTS = sorted(TESTDATA.glob("*.txt"))


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_interaction(path):
    mismatches = run_script(path)
    if mismatches:
        line_no, cmd, want, got = mismatches[0]
        import difflib
        diff = "\n".join(difflib.unified_diff(want, got, "want", "got", lineterm=""))
        pytest.fail(f"{path.name}:{line_no}: `{cmd}` output differs "
                    f"({len(mismatches)} block(s) in all; EASYRAFT_REWRITE=1 regenerates):\n{diff}")


def test_interaction_scripts_exist():
    assert len(SCRIPTS) >= 5
