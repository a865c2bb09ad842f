"""Memory versus distinct users: a `tickwire serve` (memory broker) is fed STEP users at a
time, each publishing one `order:update` (history, keyed state and a stored portfolio), and
its RSS and `tickwire_tracked_users` are read after every step.

    python bench/memory_users.py                          # 1,000,000 users, no cap reached
    python bench/memory_users.py --max-users 300000       # the cap holds memory flat

Standard library only; prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from procs import ROOT, free_port, venv_python

BATCH = 1000


def post(url: str, body: object, token: str) -> None:
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url, data, {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()


def metric(base: str, name: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text = response.read().decode()
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else float("nan")


def rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--step", type=int, default=100_000)
    parser.add_argument("--max-users", type=int, default=1_000_000)
    args = parser.parse_args()
    python, port, secret = venv_python(), free_port(), secrets.token_hex(32)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "TICKWIRE_PORT": str(port),
        "TICKWIRE_SECRET": secret,
        "TICKWIRE_CONNECT_RATE": "0",
        "TICKWIRE_LOG_LEVEL": "warning",
        "TICKWIRE_MAX_USERS": str(args.max_users),
    }
    server = subprocess.Popen([python, "-m", "tickwire", "serve"], env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    token = subprocess.check_output(
        [python, "-m", "tickwire", "token", "--user", "bench", "--role", "publisher"], env=env, text=True
    ).strip()
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/readyz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        start_kb = rss_kb(server.pid)
        print(f"| users published | users held | RSS MB | KB per held user (above {start_kb // 1024} MB) |")
        print("|--:|--:|--:|--:|")
        for done in range(args.step, args.users + 1, args.step):
            for first in range(done - args.step, done, BATCH):
                body = [
                    {
                        "type": "order:update",
                        "user": f"m{n}",
                        "data": {"orderId": "o1", "symbol": "AAPL", "qty": 1},
                    }
                    for n in range(first, first + BATCH)
                ]
                post(f"{base}/api/publish", body, token)
            time.sleep(1.5)  # one upkeep pass of the broker
            held, kb = metric(base, "tickwire_tracked_users"), rss_kb(server.pid)
            per_user = (kb - start_kb) / held if held else 0.0
            print(f"| {done:,} | {held:,.0f} | {kb / 1024:.0f} | {per_user:.2f} |", flush=True)
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    sys.exit(main())
