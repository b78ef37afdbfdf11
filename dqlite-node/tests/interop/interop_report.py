"""Pytest plugin: records the outcome of every test in a JSON file.

Loaded by suites.py with ``-p interop_report``; the file named by the environment variable
``INTEROP_REPORT`` receives ``{"<nodeid>": "passed" | "failed" | "skipped" | "error"}``.
A test counts as passed only when its setup, call and teardown all passed.
"""

import json
import os

_outcomes: dict[str, str] = {}


def pytest_runtest_logreport(report):  # noqa: ANN001, ANN201 (pytest hook)
    nodeid = report.nodeid
    previous = _outcomes.get(nodeid)
    if report.when == "call":
        outcome = report.outcome
    elif report.failed:
        outcome = "error"
    elif report.skipped:
        outcome = "skipped"
    else:
        outcome = None
    if outcome is None:
        _outcomes.setdefault(nodeid, "passed" if report.when == "setup" else "error")
        return
    # A failure in any phase wins over an earlier pass.
    if previous in (None, "passed") or outcome in ("failed", "error"):
        _outcomes[nodeid] = outcome


def pytest_collectreport(report):  # noqa: ANN001, ANN201 (pytest hook)
    if report.failed:
        _outcomes[report.nodeid or "<collection>"] = "error"


def pytest_sessionfinish(session, exitstatus):  # noqa: ANN001, ANN201 (pytest hook)
    path = os.environ.get("INTEROP_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(dict(sorted(_outcomes.items())), f, indent=0)
