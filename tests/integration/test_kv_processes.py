"""The KV service as real processes on 127.0.0.1: crashes with SIGKILL."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from easyraft import demo
from easyraft.demo import Cluster, http

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def _importable_children(monkeypatch):
    # The kv processes import easyraft from this checkout.
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_kv_demo_runs_and_succeeds(capsys):
    assert demo.run() == 0
    out = capsys.readouterr().out
    assert "demo finished: OK" in out


def test_kv_acknowledged_writes_survive_leader_kills(tmp_path):
    acked: dict[str, bytes] = {}
    with Cluster(3, base_dir=str(tmp_path)) as c:
        for i in c.ids:
            c.start(i)
        for round_no in range(3):
            leader = c.wait_leader([i for i in c.ids if i in c.procs])
            # Write through a follower and the leader until the leader dies.
            for k in range(20):
                key = f"r{round_no}-k{k}"
                node = c.ids[k % len(c.ids)]
                if node not in c.procs:
                    continue
                try:
                    code, _ = http("PUT", f"{c.api(node)}/{key}", key.encode(), timeout=5)
                except OSError:
                    continue
                if code == 204:
                    acked[key] = key.encode()
            c.kill(leader)
            survivors = [i for i in c.ids if i in c.procs]
            c.wait_leader(survivors)
            c.start(leader)
        c.wait_leader(c.ids)
        assert len(acked) >= 40, f"too few writes acknowledged: {len(acked)}"
        # Every acknowledged write is readable, linearizably, from every node.
        for i in c.ids:
            deadline = time.monotonic() + 20
            for key, value in acked.items():
                while True:
                    code, body = http("GET", f"{c.api(i)}/{key}", timeout=5)
                    if code == 200 or time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
                assert (code, body) == (200, value), f"node {i} lost acknowledged {key}"


def test_kv_wal_cli_on_a_killed_node(tmp_path):
    with Cluster(3, base_dir=str(tmp_path)) as c:
        for i in c.ids:
            c.start(i)
        c.wait_leader(c.ids)
        for k in range(10):
            assert http("PUT", f"{c.api(1)}/k{k}", b"v")[0] == 204
        c.kill(2)
        waldir = os.path.join(c.dir, "wal2")
        out = subprocess.run([sys.executable, "-m", "easyraft", "wal", "verify", waldir],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        dump = subprocess.run([sys.executable, "-m", "easyraft", "wal", "dump", waldir],
                              capture_output=True, text=True, timeout=60)
        assert dump.returncode == 0, dump.stderr
        writes = [line for line in dump.stdout.splitlines()
                  if " entry " in line and "type=normal" in line and "size=0 " not in line]
        assert len(writes) >= 10, dump.stdout
