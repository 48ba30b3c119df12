"""Memory of ``artfx serve`` while parallel uploads are decoded: the server's peak resident set with the session's
decoding budget (the default: two of the largest uploads allowed at a time) and without one, in one run.

    flock /work/bench.lock python scripts/bench_upload_memory.py            # 8 uploads of a 39.7 MP PNG
    python scripts/bench_upload_memory.py --uploads 4 --side 4000

The upload is a small PNG of one colour that declares side x side pixels (6300: 39.7 MP, under the 40 MP limit,
about 40-130 KB): cheap to send, expensive to decode. Each setting runs in its own server process (uvicorn on
127.0.0.1, the app of ``artfx serve``); all uploads are sent at once, and a 503 (busy) is retried after its
Retry-After, as the page does. Peak memory: the server's VmHWM after the uploads, less its VmRSS before them.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SERVER = """
import sys, uvicorn
from artfx.web.app import create_app
budget = None if sys.argv[2] == "default" else 1 << 50
uvicorn.run(create_app(decode_budget=budget), host="127.0.0.1", port=int(sys.argv[1]), log_level="error")
"""


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, data: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=data, method="POST", headers={"X-Artfx": "1"})
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def run(setting: str, png: bytes, uploads: int) -> dict:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), setting], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/api/info", timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        before = status_kb(proc.pid, "VmRSS")
        results: list[tuple[int, int]] = []  # (final status, 503s met)

        def one(i: int) -> None:
            busy = 0
            while True:
                code, body = post(f"{base}/api/uploads?name=big{i}.png", png)
                if code != 503:
                    results.append((code, busy))
                    return
                busy += 1
                time.sleep(float(body.get("retry_after", 2)))

        start = time.monotonic()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(uploads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - start
        peak = status_kb(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        proc.wait(30)
    return {"setting": setting, "ok": sum(c == 200 for c, _ in results), "busy": sum(b for _, b in results),
            "other": sorted(c for c, _ in results if c != 200), "rise_mb": (peak - before) / 1024,
            "peak_mb": peak / 1024, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=8)
    parser.add_argument("--side", type=int, default=6300)
    args = parser.parse_args()
    import numpy as np
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.full((args.side, args.side, 3), (120, 80, 40), np.uint8)).save(out, "PNG", optimize=True)
    png = out.getvalue()
    print(f"{args.uploads} parallel uploads of a {len(png) / 1024:.0f} KB PNG declaring {args.side}x{args.side} "
          f"({args.side ** 2 / 1e6:.1f} MP)")
    rows = [run(setting, png, args.uploads) for setting in ("unbounded", "default")]
    print(f"{'decoding budget':<16} {'accepted':>8} {'503s':>5} {'peak rise MB':>13} {'peak MB':>8} {'wall s':>7}")
    for r in rows:
        print(f"{r['setting']:<16} {r['ok']:>8} {r['busy']:>5} {r['rise_mb']:>13.0f} {r['peak_mb']:>8.0f} "
              f"{r['wall_s']:>7.1f}" + (f"  other answers: {r['other']}" if r["other"] else ""))
    print(f"peak rise, budget / unbounded: {rows[1]['rise_mb'] / rows[0]['rise_mb']:.2f}")


if __name__ == "__main__":
    main()
