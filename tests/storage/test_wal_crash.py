"""SIGKILL a WAL writer at random moments; every acked entry must survive.

A kill -9 loses the process, not the page cache, so this checks that acks
never run ahead of writes and that recovery (including re-opening a tail a
previous run left mid-segment, and cuts interrupted by the kill) never
drops or garbles acknowledged entries. Power-loss tearing is simulated by
the byte-level tests in test_wal.py.
"""
import os
import random
import signal
import subprocess
import sys

from easyraft.storage.wal import WAL

from .crash_writer import payload

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEG = 64 * 1024
WRITER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crash_writer.py")


def test_wal_survives_sigkill_at_random_moments(tmp_path):
    d = str(tmp_path / "wal")
    rng = random.Random(20261125)
    env = dict(os.environ, PYTHONPATH=ROOT)
    acked_max = 0
    for round_ in range(12):
        proc = subprocess.Popen([sys.executable, WRITER, d, str(round_), str(SEG)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env)
        try:
            want_acks = rng.randint(1, 40)
            for _ in range(want_acks):
                line = proc.stdout.readline()
                assert line, proc.stderr.read().decode()
                acked_max = max(acked_max, int(line))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            # Acks already in the pipe were written after save() returned.
            for line in proc.stdout.read().split():
                acked_max = max(acked_max, int(line))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        w = WAL.open(d, segment_size=SEG)
        try:
            meta, _hs, ents = w.read_all()
        finally:
            w.close()
        assert meta == b"crash-test"
        assert len(ents) >= acked_max, (round_, len(ents), acked_max)
        for i, e in enumerate(ents, start=1):
            assert e.index == i and e.data == payload(i), (round_, i)
    assert len(os.listdir(d)) > 3      # the runs crossed segment cuts
