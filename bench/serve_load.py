"""Load test of `bertology serve`: concurrent 24-sentence word-senses requests, latency p50/p95 and errors.

Starts `bertology serve --model MODEL` on a free loopback port (or uses --url, which must be loopback), waits
for it, sends a few warm-up requests (model loading is not counted), then for each concurrency level fires
--requests requests from that many client threads and reports latency percentiles, throughput and errors.
Bounded: at most 2,000 requests and 64 clients per level, a 60 s timeout per request and --max-seconds per
level. The request is the built-in apple-en set (24 sentences, target "apple"); the server keeps no result
cache, so every request is a full forward pass and analysis.

    .venv/bin/python bench/serve_load.py [--model minilm] [--concurrency 1,4,8] [--requests 100] [--threads 2]

Goal (issue 15): 0 errors, p95 < 1 s on minilm on this CPU. Prints the CPU (model, ISA, native bf16 or not) and
the machine's load average, which matters on a shared machine. No baseline: there is no other server of these
analyses to compare with, so it reports latency against its goal, not a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def senses_body(model: str | None) -> bytes:
    sys.path.insert(0, str(ROOT / "src"))
    from bertology.io.sentences import read_sentences

    sents, labels, _ = read_sentences("apple-en")
    text = "\n".join(f"{l}\t{s}" for l, s in zip(labels, sents))
    return json.dumps({"model": model, "sentences": text, "target": "apple"}).encode()


def post(url: str, body: bytes, timeout: float = 60) -> tuple[int, float]:
    req = urllib.request.Request(url + "/api/senses", data=body, headers={"content-type": "application/json"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        status = 0
    return status, time.perf_counter() - t0


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * len(s) + 0.5)) - 1))]   # nearest rank


def run_level(url: str, body: bytes, clients: int, requests: int, max_seconds: float) -> dict:
    deadline = time.monotonic() + max_seconds
    results: list[tuple[int, float]] = []
    lock = threading.Lock()
    left = [requests]

    def client():
        while True:
            with lock:
                if left[0] <= 0 or time.monotonic() > deadline:
                    return
                left[0] -= 1
            r = post(url, body)
            with lock:
                results.append(r)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client) for _ in range(clients)]:
            f.result()
    wall = time.perf_counter() - t0
    ok = [t for s, t in results if s == 200]
    errors: dict[str, int] = {}
    for s, _ in results:
        if s != 200:
            errors[str(s)] = errors.get(str(s), 0) + 1
    return {"concurrency": clients, "requests": len(results), "ok": len(ok), "errors": errors,
            "p50_s": round(percentile(ok, 50), 3) if ok else None,
            "p95_s": round(percentile(ok, 95), 3) if ok else None,
            "max_s": round(max(ok), 3) if ok else None,
            "mean_s": round(statistics.mean(ok), 3) if ok else None,
            "throughput_rps": round(len(ok) / wall, 2), "wall_s": round(wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--url", help="an already running server (loopback only); default: start one")
    ap.add_argument("--concurrency", default="1,4,8", help="client threads per level, comma-separated")
    ap.add_argument("--requests", type=int, default=100, help="requests per level (at most 2000)")
    ap.add_argument("--max-seconds", type=float, default=300, help="time limit per level")
    ap.add_argument("--threads", type=int, default=None, help="the server's torch threads (--threads)")
    ap.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    if not 1 <= args.requests <= 2000 or not all(1 <= c <= 64 for c in levels):
        sys.exit("serve_load: --requests must be 1..2000 and each concurrency 1..64")
    proc = None
    if args.url:
        host = urllib.parse.urlsplit(args.url).hostname or ""
        if host not in LOOPBACK:
            sys.exit(f"serve_load: --url must be a loopback address (127.0.0.1, localhost, ::1), not {host!r}")
        url = args.url.rstrip("/")
        model = None                                # the server's default model
        args.model = f"the default model of {url}"
    else:
        sys.path.insert(0, str(ROOT / "tests"))
        from serve_support import free_port

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "bertology.cli", "serve", "--model", args.model, "--port", str(port)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        model = args.model
    try:
        t0 = time.monotonic()
        while True:
            try:
                urllib.request.urlopen(url + "/api/models", timeout=5).read()
                break
            except (urllib.error.URLError, ConnectionError):
                if proc is not None and proc.poll() is not None:
                    sys.exit("serve_load: the server exited: " + proc.stderr.read().decode()[-500:])
                if time.monotonic() - t0 > 120:
                    sys.exit("serve_load: the server did not answer within 120 s")
                time.sleep(0.5)
        body = senses_body(model)
        for _ in range(3):                          # warm-up: loads the model, not counted
            status, _ = post(url, body, timeout=120)
            if status != 200:
                sys.exit(f"serve_load: warm-up request failed with HTTP {status}")
        load_before = os.getloadavg()
        rows = [run_level(url, body, c, args.requests, args.max_seconds) for c in levels]
        load_after = os.getloadavg()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(15)
    sys.path.insert(0, str(Path(__file__).parent))
    from common import cpu_line

    print(cpu_line())
    report = {"model": args.model, "request": "senses, apple-en: 24 sentences, target 'apple'", "cpu": cpu_line(),
              "server_threads": args.threads, "cpus": os.cpu_count(),
              "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
              "loadavg_1_5_15_after": [round(x, 2) for x in load_after],
              "time_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "levels": rows}
    print(f"{args.model}, 24-sentence senses requests, server threads {args.threads or 'default'}; load average before {report['loadavg_1_5_15_before']}, "
          f"after {report['loadavg_1_5_15_after']} ({os.cpu_count()} CPUs)")
    print("clients  requests  errors  p50 s  p95 s  max s  req/s")
    for r in rows:
        print(f"{r['concurrency']:7d}  {r['requests']:8d}  {sum(r['errors'].values()):6d}  {r['p50_s']:5.3f}  "
              f"{r['p95_s']:5.3f}  {r['max_s']:5.3f}  {r['throughput_rps']:5.2f}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
