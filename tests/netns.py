"""Running part of a test inside a private network namespace (`unshare -n`, as root).

Multicast is tested there: loopback gets a multicast route, and nothing can leave the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def multicast_loopback(src: str = "127.0.0.1") -> None:
    """Inside the namespace: loopback up, multicast on, 224.0.0.0/4 routed to it. `src` is the
    route's source address (what a sender to a group reports as its own address)."""
    for cmd in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "link", "set", "lo", "multicast", "on"],
        ["ip", "route", "add", "224.0.0.0/4", "dev", "lo", "src", src],
    ):
        subprocess.run(cmd, check=True, timeout=10, capture_output=True)


def run_in_netns(module: str, function: str, *args: str, timeout: float) -> dict[str, Any]:
    """`module.function(*args)` in a new network namespace; returns its JSON-able result.

    Fails (never skips) when the namespace cannot be made: CI runs as root. The child runs in a
    session of its own, so a timeout kills it with everything it started.
    """
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.fail("a network namespace needs `unshare` (util-linux) and `ip` (iproute2)")
    code = (
        f"import json, sys; from {module} import {function}; "
        f"print('RESULT ' + json.dumps({function}(*sys.argv[1:])))"
    )
    proc = subprocess.Popen(
        ["unshare", "-n", sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=10)
        pytest.fail(f"{function} did not finish in time: {stdout[-2000:]} {stderr[-2000:]}")
    if "unshare failed" in stderr or "Operation not permitted" in stderr:
        pytest.fail(
            "`unshare -n` is not permitted: this test needs root (or CAP_SYS_ADMIN) to make a "
            f"private network namespace: {stderr.strip()}"
        )
    results = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and results, stdout[-4000:] + stderr[-4000:]
    out: dict[str, Any] = json.loads(results[-1].removeprefix("RESULT "))
    return out
