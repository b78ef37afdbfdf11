"""The Python side of `cargo xtask bench`: one workload cell through the PyPI dqlite-client.

    python driver.py --servers A,B,C --database DB --conns N --secs S --procs P --out FILE

Runs three timed phases on the same connections: `write` (INSERT OR REPLACE of a new random
32-letter key with a 1 KiB value, half one repeated letter and half random letters), `read`
(SELECT of a key this connection wrote) and `mix90` (90 % such reads, 10 % writes). The
connections are spread over P processes (the client is pure Python: one process is one core
at most) and opened before the clock starts; each runs one request at a time. Errors are
counted, not retried; a connection error reconnects. Appends one JSON object per phase to
FILE: ops, wall seconds, p50/p99 in ms, busy (SQLITE_BUSY, "database is locked") and other
errors. Every loop is bounded by time and by a request count.
"""

import argparse
import asyncio
import json
import multiprocessing as mp
import random
import string
import time

import dqliteclient
from dqliteclient import ClusterClient

SCHEMA = "CREATE TABLE IF NOT EXISTS model (key TEXT, value TEXT, UNIQUE(key))"
WRITE = "INSERT OR REPLACE INTO model(key, value) VALUES(?, ?)"
READ = "SELECT value FROM model WHERE key = ?"
LETTERS = string.ascii_letters
PHASES = ("write", "read", "mix90")
MAX_OPS = 5_000_000


def is_busy(e):
    text = str(e).lower()
    return "locked" in text or "busy" in text


def is_conn_error(e):
    return isinstance(e, (dqliteclient.DqliteConnectionError, OSError, asyncio.TimeoutError,
                          dqliteclient.ProtocolError)) or "not leader" in str(e).lower()


class Conn:
    def __init__(self, cc, database, rng):
        self.cc, self.database, self.rng = cc, database, rng
        self.conn = None
        self.keys = []
        self.values = [rng.choice(LETTERS) * 512 + "".join(rng.choices(LETTERS, k=512))
                       for _ in range(64)]

    async def connect(self):
        if self.conn is not None:
            try:
                self.conn.terminate()
            except Exception:
                pass
        self.conn = await self.cc.connect(self.database, max_elapsed_seconds=30)

    async def one(self, write):
        if write:
            k = "".join(self.rng.choices(LETTERS, k=32))
            await self.conn.execute(WRITE, [k, self.rng.choice(self.values)])
            self.keys.append(k)
        else:
            v = await self.conn.fetchval(READ, [self.rng.choice(self.keys)])
            if v is None:
                raise RuntimeError("read returned no row")

    async def phase(self, name, deadline, res):
        n = 0
        while n < MAX_OPS and time.monotonic() < deadline:
            n += 1
            write = name == "write" or not self.keys or (
                name == "mix90" and self.rng.random() < 0.1)
            t0 = time.perf_counter_ns()
            try:
                if self.conn is None:
                    await self.connect()
                    t0 = time.perf_counter_ns()
                await self.one(write)
                res["lat"].append(time.perf_counter_ns() - t0)
            except Exception as e:
                if is_busy(e):
                    res["busy"] += 1
                else:
                    res["errors"] += 1
                    if is_conn_error(e):
                        self.conn = None


async def proc_main(index, args, barrier, queue):
    cc = ClusterClient.from_addresses(args.servers.split(","), timeout=10)
    mine = args.conns // args.procs + (1 if index < args.conns % args.procs else 0)
    conns = [Conn(cc, args.database, random.Random(args.seed * 7919 + index * 1000 + i))
             for i in range(mine)]
    for c in conns:
        await c.connect()
    if index == 0:
        for _ in range(200):
            try:
                await conns[0].conn.execute(SCHEMA)
                break
            except Exception as e:
                if not is_busy(e):
                    raise
                await asyncio.sleep(0.01)
    barrier.wait(timeout=120)
    for name in PHASES:
        barrier.wait(timeout=120)
        res = {"lat": [], "busy": 0, "errors": 0}
        start = time.monotonic()
        await asyncio.gather(*(c.phase(name, start + args.secs, res) for c in conns))
        res["wall"] = time.monotonic() - start
        queue.put((name, res))
    for c in conns:
        if c.conn is not None:
            await c.conn.close()


def proc_entry(index, args, barrier, queue):
    try:
        asyncio.run(proc_main(index, args, barrier, queue))
    except BaseException:
        barrier.abort()
        raise


def pct(lat, p):
    if not lat:
        return None
    return lat[min(len(lat) - 1, int(len(lat) * p))] / 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--servers", required=True)
    ap.add_argument("--database", required=True)
    ap.add_argument("--conns", type=int, required=True)
    ap.add_argument("--secs", type=float, required=True)
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    args.procs = max(1, min(args.procs, args.conns))
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(args.procs)
    queue = ctx.Queue()
    procs = [ctx.Process(target=proc_entry, args=(i, args, barrier, queue))
             for i in range(args.procs)]
    for p in procs:
        p.start()
    got = {name: [] for name in PHASES}
    deadline = time.monotonic() + len(PHASES) * (args.secs + 60) + 120
    need = len(PHASES) * args.procs
    import queue as queue_mod
    while need:
        try:
            name, res = queue.get(timeout=0.5)
        except queue_mod.Empty:
            if any(p.exitcode not in (None, 0) for p in procs) or time.monotonic() > deadline:
                for p in procs:
                    if p.is_alive():
                        p.terminate()
                raise SystemExit("driver: a client process failed (see above)")
            continue
        got[name].append(res)
        need -= 1
    for p in procs:
        p.join(timeout=30)
    with open(args.out, "a") as f:
        for name in PHASES:
            parts = got[name]
            lat = sorted(x for r in parts for x in r["lat"])
            f.write(json.dumps({
                "phase": name, "ops": len(lat), "wall": max(r["wall"] for r in parts),
                "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99),
                "busy": sum(r["busy"] for r in parts), "errors": sum(r["errors"] for r in parts),
            }) + "\n")


if __name__ == "__main__":
    main()
