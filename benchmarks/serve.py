#!/usr/bin/env python3
"""The page's server, measured as a user meets it: a real `charlm serve --port 0`.

    .venv/bin/python benchmarks/serve.py --checkpoint-dir checkpoints --checkpoint jay
    .venv/bin/python benchmarks/serve.py ... --clients 8 --duration 60

Rows (printed as a table on stdout):
  start to URL          `charlm serve` started -> its URL on stderr (the model loads later)
  first character       Generate -> the first piece of new text, model already loaded
  8 lines: page / API   the same request (--lines 8, one seed) through the server, and through
                        charlm.load(...).samples(...) in this process; their ratio
  N clients for T s     N clients each generating 8 lines over and over: songs, errors, the
                        server's peak memory (VmHWM)
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def start_server(checkpoint_dir: str) -> tuple[subprocess.Popen, str, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "charlm", "serve", "--port", "0", "--checkpoint-dir",
         checkpoint_dir], stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    line = proc.stderr.readline()
    took = time.perf_counter() - t0
    url = re.search(r"http://\S+", line).group(0)
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    return proc, url, took


def post(url: str, body: dict) -> tuple[float | None, float, list[dict]]:
    """(seconds to the first new piece, seconds in all, the events) of one generation."""
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
    t0 = time.perf_counter()
    conn.request("POST", "/api/generate", json.dumps(body), {"content-type": "application/json"})
    resp = conn.getresponse()
    first, events = None, []
    while True:
        line = resp.readline()
        if not line:
            break
        ev = json.loads(line)
        events.append(ev)
        if ev["type"] == "piece" and first is None and any(ev["pieces"]):
            first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"{resp.status}: {events}")
    return first, total, events


def peak_kb(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", text).group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint-dir", default="checkpoints")
    ap.add_argument("--checkpoint", required=True, help="a run name under --checkpoint-dir")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rows = []
    proc, url, took = start_server(args.checkpoint_dir)
    rows.append(("start to URL", f"{took:.2f} s", ""))
    try:
        body = {"checkpoint": args.checkpoint, "lines": 8, "seed": 1}
        post(url, body)  # loads the model
        firsts, pages = [], []
        for i in range(args.repeats):
            first, total, events = post(url, {**body, "seed": i + 1})
            firsts.append(first)
            pages.append(total)
        firsts.sort()
        rows.append(("first character", f"{firsts[len(firsts) // 2] * 1000:.0f} ms",
                     f"median of {args.repeats}, max {max(firsts) * 1000:.0f} ms"))  # fmt: skip

        import charlm

        lm = charlm.load(args.checkpoint, checkpoint_dir=args.checkpoint_dir, device="cpu")
        lm.samples(**{k: v for k, v in body.items() if k != "checkpoint"})  # warm
        apis = []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            recs = lm.samples(lines=8, seed=i + 1)
            apis.append(time.perf_counter() - t0)
        same = recs[0]["text"] == events[-1]["samples"][0]["text"]
        page, api = sorted(pages)[len(pages) // 2], sorted(apis)[len(apis) // 2]
        rows.append(("8 lines: page / API", f"{page:.2f} s / {api:.2f} s",
                     f"{page / api:.2f}x; same text: {same}"))  # fmt: skip

        songs, errors = [0] * args.clients, []
        deadline = time.perf_counter() + args.duration

        def client(k: int) -> None:
            seed = 1000 * k
            while time.perf_counter() < deadline:
                try:
                    _, _, evs = post(url, {**body, "seed": seed})
                    if evs[-1]["type"] != "result":
                        errors.append(evs[-1])
                    songs[k] += 1
                except Exception as e:  # counted and shown
                    errors.append(repr(e))
                seed += 1

        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rows.append((f"{args.clients} clients for {args.duration:.0f} s",
                     f"{sum(songs)} songs, {len(errors)} errors",
                     f"peak {peak_kb(proc.pid) / 1024:.0f} MB; per client "
                     f"{min(songs)}-{max(songs)}"))  # fmt: skip
        if errors:
            print(f"errors: {errors[:3]}", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(10)
    print("| row | figure | notes |\n|---|---|---|")
    for name, fig, note in rows:
        print(f"| {name} | {fig} | {note} |")


if __name__ == "__main__":
    main()
