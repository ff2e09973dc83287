"""Fixtures for transport tests: transports in child processes on 127.0.0.1.

`spawn(...)` starts tests/transport/node_proc.py with PYTHONPATH set to the
worktree and returns a Child; every child is killed when the test ends,
whatever happened. `loop_name` parametrizes a test over asyncio and uvloop
(EASYRAFT_TEST_LOOP=asyncio|uvloop narrows it to one).
"""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE_PROC = Path(__file__).with_name("node_proc.py")

# Generous deadlines for events that must happen; a test only fails on one
# when the event never comes, never because it came slowly.
DEADLINE = 30.0

_LOOPS = [os.environ["EASYRAFT_TEST_LOOP"]] if os.environ.get("EASYRAFT_TEST_LOOP") \
    else ["asyncio", "uvloop"]


@pytest.fixture(params=_LOOPS)
def loop_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Child:
    """One node_proc.py process and its command channel."""

    def __init__(self, args: list[str], loop: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), EASYRAFT_TEST_LOOP=loop)
        self.log_file = tempfile.NamedTemporaryFile(prefix="easyraft-node-", suffix=".log",
                                                    delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, str(NODE_PROC), *args], cwd=str(ROOT), env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log_file, text=True)
        self._replies: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        ready = self._wait_reply("ready")
        self.url: str = ready["url"]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.start_rss_kib: int = ready["rss_kib"]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._replies.put(json.loads(line))

    def _wait_reply(self, cmd: str) -> dict[str, Any]:
        try:
            r = self._replies.get(timeout=DEADLINE)
        except queue.Empty:
            raise AssertionError(f"node_proc gave no {cmd!r} reply; log:\n{self.log()}") from None
        assert r["reply"] == cmd, r
        return r

    def call(self, cmd: str, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kw}) + "\n")
        self.proc.stdin.flush()
        return self._wait_reply(cmd)

    def wait_for(self, pred: Callable[[dict[str, Any]], Any], what: str) -> dict[str, Any]:
        """Poll the child's state until pred(state) holds; fail after DEADLINE."""
        end = time.monotonic() + DEADLINE
        while True:
            st = self.call("state")
            if pred(st):
                return st
            if time.monotonic() > end:
                raise AssertionError(f"never happened: {what}; last state: "
                                     f"{ {k: v for k, v in st.items() if k != 'snapshots'} }")
            time.sleep(0.05)

    def log(self) -> str:
        return Path(self.log_file.name).read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        """Stop gracefully (the transport closes its streams), then reap."""
        if self.proc.poll() is None:
            try:
                self.call("stop")
            except (AssertionError, BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self) -> None:
        self.kill()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()
        self.log_file.close()
        os.unlink(self.log_file.name)


@pytest.fixture
def spawn(loop_name: str) -> Iterator[Callable[..., Child]]:
    children: list[Child] = []

    def start(*args: Any) -> Child:
        c = Child([str(a) for a in args], loop_name)
        children.append(c)
        return c

    try:
        yield start
    finally:
        for c in children:
            c.cleanup()


def count(state: dict[str, Any], frm: int, mtype: str) -> int:
    return int(state["counts"].get(f"{frm}:{mtype}", 0))


def peer(state: dict[str, Any], peer_id: int) -> dict[str, Any]:
    return next(p for p in state["peers"] if p["id"] == peer_id)
