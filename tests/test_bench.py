"""
The benchmark still runs: a short run prints a row of figures for every case.

Only the presence of figures is checked, never their values: timings depend
on the machine and on whatever else it is doing.
"""

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench.py"

#: A table row: run, tool, case, requests, req/s, req/cpu-s, p50, p99, errors,
#: cpu of the worker, the generator and the rest of the machine.
ROW = (
    r"\s+1 asyncio {case}\s+\d+\s+\d+\s+(\d+|-)"
    r"\s+[\d.]+\s+[\d.]+\s+\d+\s+\d+%/\d+%/\d+%"
)


def test_a_short_bench_prints_figures_for_every_case(tmp_path):
    """Against a fresh SQLite store, each case and the memory get a figure."""
    finished = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            f"--store=sqlite:{tmp_path}/sessions.db",
            "--duration=0.5",
            "--connections=4",
            "--sockets=2",
            "--no-wrk",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 0, finished.stderr + finished.stdout

    for case in ("get", "post", "mix: all requests", "mix: keys.get burst"):
        assert re.search(ROW.format(case=re.escape(case)), finished.stdout), case
    assert re.search(r"peak memory \(VmHWM\) [\d.]+ MB", finished.stdout)
