"""The peer benchmark's harness cannot rot: pykue's adapter through bench/peer/run.py on a tiny N."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import PY, ROOT, py_env


def test_peer_benchmark_runs_pykue_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "peer.json"
    args = [PY, str(ROOT / "bench" / "peer" / "run.py"), "--quick", "--systems", "pykue", "--jobs", "300",
            "--latency-samples", "20", "--stall", "10", "--cache", str(tmp_path / "c"), "--json", str(out)]  # fmt: skip
    done = subprocess.run(args, env=py_env(), capture_output=True, text=True, timeout=110, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| **pykue** |" in done.stdout
    report = json.loads(out.read_text())
    assert report["jobs"] == 300 and report["redis"]
    (res,) = report["results"]
    assert res["system"] == "pykue" and res["enqueue_single"] > 0 and res["enqueue_bulk"] > 0
    for mode in ("incr", "pure"):  # both drains counted every job, from the handler's INCR and the complete set
        best = res["drain"][mode]
        assert 0 < best["jobs_timed"] <= 300 and best["drain_per_s"] > 0 and best["concurrency"] == 50
        assert best["redis_us_per_job"] > 0 and best["worker_us_per_job"] >= 0
    assert 0 < res["latency"]["p50_ms"] <= res["latency"]["p99_ms"]
