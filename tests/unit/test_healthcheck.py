"""docker/healthcheck.py's `progress` check: passes on a fresh heartbeat file, fails on a
stale or missing one; and the run loop writes that file."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from topictag.consumer.run import run

HEALTHCHECK = Path(__file__).resolve().parents[2] / "docker" / "healthcheck.py"


def check(*args: str) -> int:
    return subprocess.run([sys.executable, str(HEALTHCHECK), *args], capture_output=True, timeout=30).returncode


def test_fresh_heartbeat_passes(tmp_path):
    beat = tmp_path / "heartbeat"
    beat.touch()
    assert check("progress", str(beat), "60") == 0


def test_stale_heartbeat_fails(tmp_path):
    beat = tmp_path / "heartbeat"
    beat.touch()
    old = time.time() - 120
    os.utime(beat, (old, old))
    assert check("progress", str(beat), "60") == 1


def test_missing_heartbeat_fails(tmp_path):
    assert check("progress", str(tmp_path / "absent"), "60") == 1


def test_bad_arguments_are_a_usage_error(tmp_path):
    assert check("progress", str(tmp_path / "absent")) == 2


def test_the_run_loop_beats_on_idle_polls_and_after_batches(tmp_path):
    beat = tmp_path / "heartbeat"
    stopping = threading.Event()
    polls = iter([[], ["record"]])

    def source(_stopping):
        return next(polls)

    def process(records):
        assert beat.exists()  # the idle poll before already beat
        os.utime(beat, (0, 0))
        return records

    run(source, process, stopping, max_batches=1, heartbeat=beat)
    assert time.time() - beat.stat().st_mtime < 60  # beat again after the batch
