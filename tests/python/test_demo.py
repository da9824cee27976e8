"""`python -m lakewave demo` tells its whole story (the README's first command)."""

from __future__ import annotations

import subprocess
import sys


def test_the_demo_runs_every_step() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lakewave", "demo", "--rows", "20000"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for step in range(1, 8):
        assert f"== {step}." in out
    assert "engine: cluster (offloaded" in out
    assert "engine: row store (not offloaded" in out
    assert "refreshed to version 1 (1 file added, 0 removed)" in out
    assert "serving: MySQL 8.4.0-lakewave" in out
    # Propagated DML: the cluster and the row store agree.
    line = next(line for line in out.splitlines() if line.startswith("cluster: "))
    cluster, row_store = line.removeprefix("cluster: ").split("; row store: ")
    assert cluster == row_store
