"""Creates the Python environment of the interop tests; prints its interpreter's path.

Usage (with any Python >= 3.13):
    python3.13 prepare.py --venv DIR [--sources DIR]

Makes DIR a virtualenv holding requirements.txt (pip, from PyPI) unless it already holds
exactly that file's pins (a stamp records them), then, with --sources, downloads and unpacks
the pinned sdists (suites.py fetch). An exclusive lock on DIR.lock lets several test processes
call this at once: one prepares, the others wait and reuse.
"""

import argparse
import fcntl
import hashlib
import shutil
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--venv", required=True)
    p.add_argument("--sources")
    a = p.parse_args()
    if sys.version_info < (3, 13):
        raise SystemExit(f"Python >= 3.13 needed, this is {sys.version.split()[0]}")
    env_dir = Path(a.venv).resolve()
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    reqs = (HERE / "requirements.txt").read_bytes()
    want = hashlib.sha256(reqs).hexdigest()
    with open(str(env_dir) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        py = env_dir / "bin" / "python"
        stamp = env_dir / "interop-requirements.sha256"
        if not (py.exists() and stamp.exists() and stamp.read_text().strip() == want):
            shutil.rmtree(env_dir, ignore_errors=True)
            venv.EnvBuilder(with_pip=True).create(env_dir)
            subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                            "-r", str(HERE / "requirements.txt")], check=True, timeout=600)
            stamp.write_text(want + "\n")
        if a.sources:
            subprocess.run([str(py), str(HERE / "suites.py"), "fetch", "--dest", a.sources],
                           check=True, timeout=600, stdout=subprocess.DEVNULL)
    print(py)


if __name__ == "__main__":
    main()
