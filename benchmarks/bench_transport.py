"""Transport throughput between two processes on loopback, beside a raw Protocol socket.

    PYTHONPATH=. python benchmarks/bench_transport.py [--loop uvloop|asyncio] [--quick]

Each workload runs twice in the same run: through easyraft's Transport
(sender: Transport.send + encode_frames per flush; receiver: upgrade
handshake, decode_frames, routing checks, metrics, handler.process) and
through a bare asyncio.Protocol pair writing the same pre-encoded bytes with
the same batching and flow control and only counting bytes at the receiver.
The ratio transport/raw is the figure recorded in benchmarks/README.md.
Timing: from the sender's first write to the receiver's "done" line on
stdout, so both paths include the same pipe latency.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from easyraft._core.codec import encode_frames  # noqa: E402
from easyraft._core.types import (ConfState, Entry, Message, MsgType, Snapshot,  # noqa: E402
                                  SnapshotMetadata)
from easyraft.transport import Transport  # noqa: E402


def install(loop: str) -> None:
    if loop == "uvloop":
        import uvloop
        uvloop.install()


# -- receivers (run in the child process) ------------------------------------------


class _RawSink(asyncio.Protocol):
    def __init__(self, expect: int, done: asyncio.Future[None]) -> None:
        self.expect, self.got, self.done = expect, 0, done

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got >= self.expect and not self.done.done():
            self.done.set_result(None)


class _Counter:
    cluster_id = 1
    node_id = 2

    def __init__(self, expect: int, done: asyncio.Future[None]) -> None:
        self.expect, self.got, self.done = expect, 0, done

    def process(self, messages: list[Message]) -> None:
        self.got += len(messages)
        if self.got >= self.expect and not self.done.done():
            self.done.set_result(None)

    async def process_snapshot(self, message: Message) -> None:
        assert message.snapshot is not None
        self.got += 1
        if not self.done.done():
            self.done.set_result(None)

    def report_unreachable(self, peer_id: int) -> None:
        pass

    def report_snapshot(self, peer_id: int, ok: bool) -> None:
        pass

    def is_removed(self, peer_id: int) -> bool:
        return False

    def status(self) -> dict[str, Any]:
        return {}


async def serve(kind: str, expect: int) -> None:
    # EASYRAFT_BENCH_PROFILE=file: write the receiver's cProfile stats there.
    prof_file = os.environ.get("EASYRAFT_BENCH_PROFILE")
    if prof_file:
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
    loop = asyncio.get_running_loop()
    while True:
        done: asyncio.Future[None] = loop.create_future()
        if kind == "raw":
            server = await loop.create_server(lambda: _RawSink(expect, done), "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            print(port, flush=True)
            await done
            server.close()
        else:
            t = Transport(_Counter(expect, done), "http://127.0.0.1:0", max_size_per_msg=1 << 20)
            await t.start()
            print(t.listen_url.rsplit(":", 1)[1], flush=True)
            await done
            await t.stop()
        if prof_file:
            prof.disable()
            prof.dump_stats(prof_file)
        print("done", flush=True)
        return


# -- senders (in the parent) -------------------------------------------------------------


class _RawSource(asyncio.Protocol):
    def __init__(self) -> None:
        self.paused = False
        self.resumed: asyncio.Future[None] | None = None

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.resumed is not None and not self.resumed.done():
            self.resumed.set_result(None)

    async def wait_writable(self) -> None:
        while self.paused:
            self.resumed = asyncio.get_running_loop().create_future()
            await self.resumed


class _Sink:
    cluster_id = 1
    node_id = 1

    def process(self, messages: list[Message]) -> None:
        pass

    async def process_snapshot(self, message: Message) -> None:
        pass

    def report_unreachable(self, peer_id: int) -> None:
        pass    # also called when the receiver exits; drops are checked in metrics

    def report_snapshot(self, peer_id: int, ok: bool) -> None:
        assert ok

    def is_removed(self, peer_id: int) -> bool:
        return False

    def status(self) -> dict[str, Any]:
        return {}


def spawn(kind: str, expect: int, loop: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--expect", str(expect),
                             "--loop", loop], stdout=subprocess.PIPE, text=True, cwd=str(ROOT),
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


async def _wait_done(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
    assert line.strip() == "done", line


async def run_raw(batch_bytes: bytes, iterations: int, loop_name: str) -> float:
    proc, port = spawn("raw", len(batch_bytes) * iterations, loop_name)
    try:
        loop = asyncio.get_running_loop()
        tr, proto = await loop.create_connection(_RawSource, "127.0.0.1", port)
        t0 = time.perf_counter()
        for _ in range(iterations):
            if proto.paused:
                await proto.wait_writable()
            tr.write(batch_bytes)
            await asyncio.sleep(0)
        await _wait_done(proc)
        dt = time.perf_counter() - t0
        tr.close()
        return dt
    finally:
        proc.kill()
        proc.wait()


async def run_transport(batch: list[Message], iterations: int, loop_name: str) -> float:
    proc, port = spawn("transport", len(batch) * iterations, loop_name)
    try:
        t = Transport(_Sink(), "http://127.0.0.1:0", max_size_per_msg=1 << 20,
                      queue_size=1 << 20)
        await t.start()
        t.add_peer(2, f"http://127.0.0.1:{port}")
        peer = t.peers[2]
        while not peer.reachable:
            await asyncio.sleep(0.001)
        t0 = time.perf_counter()
        for _ in range(iterations):
            while peer.paused:          # respect flow control, as the raw sender does
                await asyncio.sleep(0)
            t.send(batch)
            await asyncio.sleep(0)
        await _wait_done(proc)
        dt = time.perf_counter() - t0
        assert t.stats[2].dropped == 0, "benchmark dropped messages"
        await t.stop()
        return dt
    finally:
        proc.kill()
        proc.wait()


async def run_snapshot(size: int, loop_name: str) -> tuple[float, float]:
    data = (os.urandom(1 << 16) + b"easyraft" * (1 << 13)) * (size // (1 << 17))
    # Raw: the same bytes, uncompressed, in 1 MiB writes with flow control.
    proc, port = spawn("raw", len(data), loop_name)
    try:
        loop = asyncio.get_running_loop()
        tr, proto = await loop.create_connection(_RawSource, "127.0.0.1", port)
        view = memoryview(data)
        t0 = time.perf_counter()
        for off in range(0, len(data), 1 << 20):
            if proto.paused:
                await proto.wait_writable()
            tr.write(view[off:off + (1 << 20)])
        await _wait_done(proc)
        raw = time.perf_counter() - t0
        tr.close()
    finally:
        proc.kill()
        proc.wait()
    proc, port = spawn("transport", 1, loop_name)
    try:
        t = Transport(_Sink(), "http://127.0.0.1:0", max_size_per_msg=1 << 20)
        await t.start()
        t.add_peer(2, f"http://127.0.0.1:{port}")
        m = Message(type=MsgType.MsgSnap, to=2, frm=1, term=1, snapshot=Snapshot(
            data, SnapshotMetadata(index=10, term=1, conf_state=ConfState(voters=[1, 2]))))
        t0 = time.perf_counter()
        t.send([m])
        await _wait_done(proc)
        ours = time.perf_counter() - t0
        await t.stop()
    finally:
        proc.kill()
        proc.wait()
    return ours, raw


def heartbeat_batch(n: int) -> list[Message]:
    return [Message(type=MsgType.MsgHeartbeat, to=2, frm=1, term=7, commit=12345)
            for _ in range(n)]


def append_batch(n: int) -> list[Message]:
    return [Message(type=MsgType.MsgApp, to=2, frm=1, term=7, log_term=7, index=1000 + i,
                    commit=999, entries=[Entry(term=7, index=1001 + i * 64 + j, data=b"x" * 512)
                                         for j in range(64)])
            for i in range(n)]


async def main(args: argparse.Namespace) -> None:
    scale = 0.2 if args.quick else 1.0
    rows = []
    for name, batch, iters in (
        ("heartbeat (74 B frames, 128 per flush)", heartbeat_batch(128), int(8000 * scale)),
        ("MsgApp 64 x 512 B (33.9 KB frames, 4 per flush)", append_batch(4), int(5000 * scale)),
    ):
        raw_bytes = encode_frames(batch)
        msgs = len(batch) * iters
        mb = len(raw_bytes) * iters / 1e6
        best_t = min([await run_transport(batch, iters, args.loop) for _ in range(args.repeat)])
        best_r = min([await run_raw(raw_bytes, iters, args.loop) for _ in range(args.repeat)])
        rows.append((name, msgs / best_t, mb / best_t, msgs / best_r, mb / best_r, best_r / best_t))
    size = int((200 << 20) * scale)
    snap_t, snap_r = min([await run_snapshot(size, args.loop) for _ in range(args.repeat)])
    print(f"loop={args.loop} python={sys.version.split()[0]} cpus={os.cpu_count()}")
    print(f"{'workload':50} {'transport':>22} {'raw protocol':>22} {'ratio':>6}")
    for name, tm, tmb, rm, rmb, ratio in rows:
        print(f"{name:50} {tm:10,.0f} msg/s {tmb:6,.0f} MB/s {rm:10,.0f} msg/s {rmb:6,.0f} MB/s "
              f"{ratio:6.2f}")
    print(f"{'snapshot ' + str(size >> 20) + ' MiB (lz4, chunked POST)':50} "
          f"{size / 1e6 / snap_t:15,.0f} MB/s {size / 1e6 / snap_r:15,.0f} MB/s "
          f"{snap_r / snap_t:6.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio"])
    ap.add_argument("--serve", choices=["raw", "transport"])
    ap.add_argument("--expect", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    install(a.loop)
    if a.serve:
        asyncio.run(serve(a.serve, a.expect))
    else:
        asyncio.run(main(a))
