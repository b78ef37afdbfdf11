"""The Python dqlite packages' own test suites, run against a live cluster.

Usage:
    python suites.py fetch --dest DIR
        Downloads the pinned sdists (pip download, sha256 checked against SDISTS below) and
        unpacks them into DIR. No third-party test code is kept in this repository.
    python suites.py run --src DIR --suite NAME --servers A,B,C --out FILE.json
                         [--subset FILE] [--timeout S] [--files F]...
        Runs one suite against the cluster and writes {"nodeid": outcome} to FILE.json.
    python suites.py passed FILE.json
        Prints the passed node ids, sorted (the baseline format).

Suites (the sdist and the pytest arguments):
    client      dqlite-client 0.8.0      tests/integration
    dbapi       dqlite-dbapi 0.8.0       tests/integration
    sqlalchemy  sqlalchemy-dqlite 0.8.0  tests/integration
    compliance  sqlalchemy-dqlite 0.8.0  tests/compliance (SQLAlchemy's dialect suite), --dburi

The packages point their integration tests at a cluster with the environment variables
DQLITE_TEST_CLUSTER (one address) and DQLITE_TEST_CLUSTER_NODES (all addresses); the
compliance suite takes --dburi dqlite://HOST:PORT/DB. Fixtures of the upstream dev checkout
(python-dqlite-dev's dqlitetestlib: docker-driven leader flips, membership changes) are not on
PyPI, so the tests that need them error on every server alike.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name==version -> sha256 of the sdist on PyPI.
SDISTS = {
    "dqlite-client==0.8.0": (
        "dqlite_client-0.8.0.tar.gz",
        "4ab0f9b15e9dc12bd87b12dfa43cfae5a679ce66677ae6c9bb78f73a118dd7d6"),
    "dqlite-dbapi==0.8.0": (
        "dqlite_dbapi-0.8.0.tar.gz",
        "e17d1124cf98b3caa086e7fba83093b28567624566109613eb8eab9a1b846f63"),
    "sqlalchemy-dqlite==0.8.0": (
        "sqlalchemy_dqlite-0.8.0.tar.gz",
        "d34dc1884fd39e301156d6d7a7c0440ae5f1bccc0a681069727cdcf4550ce24d"),
}

SUITES = {
    "client": ("dqlite_client-0.8.0", ["tests/integration"]),
    "dbapi": ("dqlite_dbapi-0.8.0", ["tests/integration"]),
    "sqlalchemy": ("sqlalchemy_dqlite-0.8.0", ["tests/integration"]),
    "compliance": ("sqlalchemy_dqlite-0.8.0", ["tests/compliance"]),
}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(dest):
    dest = Path(dest)
    dl = dest / "sdists"
    dl.mkdir(parents=True, exist_ok=True)
    missing = [spec for spec, (fname, digest) in SDISTS.items()
               if not (dl / fname).exists() or sha256(dl / fname) != digest]
    if missing:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-binary",
                        ":all:", "--no-deps", "--dest", str(dl), *missing],
                       check=True, timeout=300)
    for spec, (fname, digest) in SDISTS.items():
        got = sha256(dl / fname)
        if got != digest:
            raise SystemExit(f"{fname}: sha256 {got}, expected {digest}")
        root = fname.removesuffix(".tar.gz")
        if not (dest / root).is_dir():
            with tarfile.open(dl / fname) as tar:
                tar.extractall(dest, filter="data")
    print(dest)


def run(src, suite, servers, out, subset, timeout, files):
    root, args = SUITES[suite]
    cwd = Path(src) / root
    if files:
        args = list(files)
    if subset:
        # Node ids select single tests; pytest takes them as positional arguments.
        args = [line.strip() for line in Path(subset).read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "interop_report",
           "-q", "--timeout", str(timeout), *args]
    if suite == "compliance":
        # A fresh database per run: dqlite cannot drop one.
        db = f"compliance_{os.getpid()}_{int(time.time())}"
        cmd += ["--dburi", f"dqlite://{servers[0]}/{db}"]
    env = dict(os.environ)
    env["DQLITE_TEST_CLUSTER"] = servers[0]
    env["DQLITE_TEST_CLUSTER_NODES"] = ",".join(servers)
    env["INTEROP_REPORT"] = str(Path(out).resolve())
    env["PYTHONPATH"] = str(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    # pytest's own exit status is not the verdict: the caller compares outcomes.
    proc = subprocess.run(cmd, cwd=cwd, env=env, check=False)
    if not Path(out).exists():
        raise SystemExit(f"pytest wrote no report (exit {proc.returncode})")
    outcomes = json.loads(Path(out).read_text())
    counts = {}
    for v in outcomes.values():
        counts[v] = counts.get(v, 0) + 1
    print(f"suite {suite}: {json.dumps(counts, sort_keys=True)}", file=sys.stderr)


def passed(path):
    outcomes = json.loads(Path(path).read_text())
    for nodeid in sorted(k for k, v in outcomes.items() if v == "passed"):
        print(nodeid)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch")
    f.add_argument("--dest", required=True)
    r = sub.add_parser("run")
    r.add_argument("--src", required=True)
    r.add_argument("--suite", required=True, choices=sorted(SUITES))
    r.add_argument("--servers", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--subset")
    r.add_argument("--files", action="append", help="a test file or node id (repeatable)")
    r.add_argument("--timeout", type=int, default=60)
    s = sub.add_parser("passed")
    s.add_argument("file")
    a = p.parse_args()
    if a.cmd == "fetch":
        fetch(a.dest)
    elif a.cmd == "run":
        run(a.src, a.suite, [x for x in a.servers.split(",") if x], a.out, a.subset, a.timeout,
            a.files)
    else:
        passed(a.file)


if __name__ == "__main__":
    main()
