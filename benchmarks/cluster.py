"""End-to-end cluster benchmark: 3 processes on loopback, WAL with fdatasync.

    PYTHONPATH=. python benchmarks/cluster.py [--seconds 5] [--concurrency 1,16,128] [--size 512]

Three `RaftNode`s run in three processes (uvloop), talking over the real
transport. The driver runs inside the leader's process: C asyncio tasks each
loop on `await node.propose(payload)` (propose_and_wait: committed on a
quorum and applied on the leader) for the given time. Reported: commits/s and
latency p50/p99 per concurrency.

Baseline measured in the same run, on the same filesystem: a loop of
os.write(512 B) + os.fdatasync into a preallocated file. One commit needs at
least one fdatasync on the leader and one on a follower (in parallel), so the
sync rate bounds commits/s at concurrency 1; group commit lets higher
concurrency share syncs. The ratios commits/s ÷ syncs/s and p50 ÷ sync
latency are what benchmarks/README.md records.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def fsync_baseline(directory: str, seconds: float = 2.0, size: int = 512) -> tuple[float, float]:
    """(syncs per second, median sync latency in s) of write+fdatasync here."""
    path = os.path.join(directory, "fsync-baseline")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"\0" * (64 << 20))
        os.fsync(fd)
        os.lseek(fd, 0, os.SEEK_SET)
        buf = b"x" * size
        lat = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            os.write(fd, buf)
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t0)
        return len(lat) / sum(lat), statistics.median(lat)
    finally:
        os.close(fd)
        os.unlink(path)


# -- a node process ----------------------------------------------------------------

class _Sink:
    def __init__(self) -> None:
        self.n = 0

    def on_commit(self, data: bytes, term: int, index: int) -> None:
        self.n += 1


async def run_node(config: dict, drive: dict | None) -> None:
    from easyraft import aio
    node = aio.RaftNode(config, _Sink())
    await node.start()
    try:
        if drive is None:
            # Followers serve until stdin closes.
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
            return
        leader = await node.wait_leader(10)
        if leader != config["id"]:
            await node.transfer_leadership(config["id"], timeout=10)
        payload = b"p" * drive["size"]
        # Warm up: the WAL zero-fills its next segment in the background
        # right after start; measure the steady state, not that one-off.
        warm_until = time.perf_counter() + drive["warmup"]
        while time.perf_counter() < warm_until:
            await node.propose(payload, timeout=10)
        results = []
        for conc in drive["concurrency"]:
            lat: list[float] = []
            stop_at = time.perf_counter() + drive["seconds"]

            async def worker(stop_at: float, lat: list[float]) -> None:
                while time.perf_counter() < stop_at:
                    t0 = time.perf_counter()
                    await node.propose(payload, timeout=10)
                    lat.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await asyncio.gather(*(worker(stop_at, lat) for _ in range(conc)))
            elapsed = time.perf_counter() - t0
            lat.sort()
            results.append({"concurrency": conc, "commits_per_s": len(lat) / elapsed,
                            "p50_ms": lat[len(lat) // 2] * 1e3,
                            "p99_ms": lat[int(len(lat) * 0.99)] * 1e3})
        print(json.dumps(results), flush=True)
    finally:
        await node.stop()


def child_main(args: argparse.Namespace) -> None:
    import uvloop
    config = json.loads(args.child_config)
    drive = json.loads(args.drive) if args.drive else None
    uvloop.run(run_node(config, drive))


# -- the driver --------------------------------------------------------------------

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--concurrency", default="1,16,128")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--child-config")
    p.add_argument("--drive")
    args = p.parse_args()
    if args.child_config:
        child_main(args)
        return
    tmp = tempfile.mkdtemp(prefix="easyraft-bench-")
    syncs_per_s, sync_lat = fsync_baseline(tmp)
    ports = free_ports(3)
    peers = [{"id": i + 1, "url": f"http://127.0.0.1:{port}"} for i, port in enumerate(ports)]
    procs = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        for i in (1, 2, 3):
            cfg = {"id": i, "cluster_id": 7, "peers": peers, "tickms": 50, "boostrap_timeout": 0,
                   "waldir": os.path.join(tmp, f"wal{i}"), "snapdir": os.path.join(tmp, f"snap{i}"),
                   "snap_count": 100000, "fsync": os.environ.get("BENCH_FSYNC", "1") == "1"}
            drive = None
            if i == 1:
                drive = json.dumps({"seconds": args.seconds, "size": args.size,
                                    "warmup": args.warmup,
                                    "concurrency": [int(c) for c in args.concurrency.split(",")]})
            cmd = [sys.executable, __file__, "--child-config", json.dumps(cfg)]
            if drive:
                cmd += ["--drive", drive]
            procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          env=env, text=True))
        out, _ = procs[0].communicate(timeout=600)
        results = json.loads(out.strip().splitlines()[-1])
    finally:
        for pr in procs:
            if pr.poll() is None:
                try:
                    pr.stdin.close()  # type: ignore[union-attr]
                except OSError:
                    pass
        for pr in procs:
            try:
                pr.wait(20)
            except subprocess.TimeoutExpired:
                pr.kill()
                pr.wait()
    print(f"baseline: write+fdatasync of {args.size} B here: {syncs_per_s:,.0f} syncs/s, "
          f"median {sync_lat * 1e3:.3f} ms")
    print("| concurrency | commits/s | ÷ syncs/s | p50 ms | p99 ms | p50 ÷ sync latency |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['concurrency']} | {r['commits_per_s']:,.0f} | "
              f"{r['commits_per_s'] / syncs_per_s:.2f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
              f"{r['p50_ms'] / 1e3 / sync_lat:.1f} |")


if __name__ == "__main__":
    main()
