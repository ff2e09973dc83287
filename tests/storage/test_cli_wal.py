"""`easyraft wal verify|dump|repair`."""
import os
import subprocess
import sys

from easyraft._core.types import Entry, HardState
from easyraft.cli import main
from easyraft.storage import wal as walmod
from easyraft.storage.wal import WAL

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEG = 8192


def make(d, n=30):
    w = WAL.create(d, b"meta", segment_size=SEG)
    for i in range(1, n + 1):
        w.save(HardState(term=2, vote=1, commit=i),
               [Entry(term=2, index=i, data=b"payload-%03d" % i * 10)], True)
    w.save_snapshot(10, 2)
    last = w._offset
    w.close()
    return last


def test_cli_wal_verify_ok_and_dump(tmp_path, capsys):
    d = str(tmp_path / "wal")
    make(d)
    assert main(["wal", "verify", d]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: ") and "30 entries (index 1..30)" in out and "commit=30" in out
    assert main(["wal", "dump", d, "--bytes", "11"]) == 0
    out = capsys.readouterr().out
    assert "index=7 term=2 type=normal size=110 data=b'payload-007'..." in out
    assert "state     term=2 vote=1 commit=30" in out
    assert "snapshot  index=10 term=2" in out
    assert out.count(".wal\n") == len(walmod.list_segments(d))


def test_cli_wal_verify_corrupt_exits_1_with_file_and_offset(tmp_path):
    d = str(tmp_path / "wal")
    make(d)
    seg = walmod.list_segments(d)[0].name
    path = os.path.join(d, seg)
    rec = [r for r in walmod.dump(d) if r.file == path and r.type == "entry"][3]
    with open(path, "r+b") as f:
        f.seek(rec.offset + 20)
        f.write(b"\x00\xff")
    r = subprocess.run([sys.executable, "-m", "easyraft", "wal", "verify", d], capture_output=True,
                       text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), timeout=60)
    assert r.returncode == 1
    assert f"corrupt: {path} offset {rec.offset}: record crc mismatch" in r.stdout
    # dump shows the good records, then the corruption; repair refuses.
    assert main(["wal", "dump", d]) == 1
    assert main(["wal", "repair", d, "--truncate-torn-tail"]) == 1
    assert main(["wal", "repair", d]) == 1


def test_cli_wal_repair_needs_flag_and_truncates_only_torn_tail(tmp_path, capsys):
    d = str(tmp_path / "wal")
    last = make(d)
    tail = os.path.join(d, walmod.list_segments(d)[-1].name)
    with open(tail, "r+b") as f:           # a half-written record after the end
        f.seek(last)
        f.write(b"\x11" * 40)
    assert main(["wal", "verify", d]) == 0
    assert f"torn tail: {tail} offset {last}" in capsys.readouterr().out
    assert main(["wal", "repair", d]) == 1
    assert "--truncate-torn-tail" in capsys.readouterr().out
    with open(tail, "rb") as f:
        assert f.read()[last:last + 40] == b"\x11" * 40    # untouched without the flag
    assert main(["wal", "repair", d, "--truncate-torn-tail"]) == 0
    assert f"truncated torn tail: {tail} offset {last}" in capsys.readouterr().out
    with open(tail, "rb") as f:
        assert f.read()[last:last + 40] == bytes(40)
    assert main(["wal", "verify", d]) == 0
    assert "torn" not in capsys.readouterr().out
    assert main(["wal", "repair", d]) == 0
    assert "nothing to repair" in capsys.readouterr().out


def test_cli_wal_repair_refuses_while_locked(tmp_path, capsys):
    d = str(tmp_path / "wal")
    make(d)
    w = WAL.open(d, 10, 2, segment_size=SEG)
    try:
        assert main(["wal", "repair", d, "--truncate-torn-tail"]) == 1
        assert "locked" in capsys.readouterr().err
    finally:
        w.close()


def test_cli_wal_missing_dir(tmp_path, capsys):
    assert main(["wal", "verify", str(tmp_path)]) == 2
    assert "no WAL segments" in capsys.readouterr().err
