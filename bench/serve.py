"""Benchmark: `archlab serve` under N concurrent image requests on loopback against calling the
same prediction in-process, and whether batching concurrent requests would pay.

Usage: python bench/serve.py [--run RUN_DIR] [--requests 64] [--concurrency 8] [--max-seconds 60]
Without --run it trains a throwaway ResNet-18 run on scikit-learn's digits (1 epoch: speed does
not depend on what the weights learned). Three measurements in one process, same image:
  http      N POST /predict, 1 or C at a time (threads + http.client), to servers in
            subprocesses with concurrent requests batched (--max-batch 32, the default) or not
  direct    the server's own predict function called in-process, one image per call
  batched   the same function on C images per calls
Prints p50/p95 latency, throughput and the ratios, with os.getloadavg() before and after: the
machine is shared, so absolute times move with the other jobs; compare the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

BOUNDARY = "archlab-bench"


def train_run(out: Path) -> Path:
    from archlab.cli import main

    buf = io.StringIO()
    sets = ["train.threads=1", "train.progress=off", "train.epochs=1"]
    with contextlib.redirect_stdout(buf):
        assert main(["train", "--preset", "images-resnet18-smoke", "--out", str(out),
                     *(f"--set={s}" for s in sets)]) == 0  # fmt: skip
    return Path(buf.getvalue().strip().splitlines()[-1])


def png_bytes(run: Path) -> bytes:
    from PIL import Image

    fitted = json.loads((run / "fitted.json").read_text())
    side = int(fitted.get("size", 32))
    arr = np.random.default_rng(0).integers(0, 255, (side, side), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def body(image: bytes) -> bytes:
    head = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
            "Content-Type: image/png\r\n\r\n").encode()  # fmt: skip
    return head + image + f"\r\n--{BOUNDARY}--\r\n".encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stats(lat: list[float], wall: float) -> dict[str, float]:
    q = np.percentile(lat, [50, 95]) if lat else [float("nan")] * 2
    return {"n": len(lat), "p50_ms": 1e3 * q[0], "p95_ms": 1e3 * q[1],
            "per_s": len(lat) / wall if wall else float("nan")}  # fmt: skip


def http_load(port: int, payload: bytes, n: int, conc: int, max_s: float) -> dict[str, float]:
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    left = [n]
    stop = time.monotonic() + max_s

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
        while time.monotonic() < stop:
            with lock:
                if left[0] == 0:
                    break
                left[0] -= 1
            t0 = time.perf_counter()
            conn.request("POST", "/predict", body=payload, headers=headers)
            r = conn.getresponse()
            r.read()
            dt = time.perf_counter() - t0
            with lock:
                (lat.append(dt) if r.status == 200 else errors.append(str(r.status)))
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = stats(lat, time.perf_counter() - t0)
    out["errors"] = len(errors)
    return out


def wait_for(server: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not start") from None
            time.sleep(0.3)


def median_round(rounds: list[dict[str, dict[str, float]]], key: str) -> dict[str, float]:
    """The round whose throughput is the median for ``key``."""
    ordered = sorted((r[key] for r in rounds), key=lambda m: m["per_s"])
    return ordered[len(ordered) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=None)
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-seconds", type=float, default=60.0, help="per measurement")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    n, conc = min(args.requests, 1000), min(args.concurrency, 64)  # bounded either way

    with tempfile.TemporaryDirectory(prefix="archlab-bench-serve-") as tmp:
        run = args.run or train_run(Path(tmp))
        image = png_bytes(run)
        load_before = os.getloadavg()

        # In-process: the server's own function, so the difference is HTTP + the event loop.
        import torch

        from archlab.serve import Inputs, Limits, image_predict, load_runs

        served = next(iter(load_runs([run]).values()))
        limits = Limits(max_batch=1)  # the model called directly, no batching thread
        one, many = Inputs(files=[("x.png", image)]), Inputs(files=[("x.png", image)] * conc)
        image_predict(served, one, limits)  # warm-up

        def direct() -> dict[str, float]:
            lat, t0 = [], time.perf_counter()
            for _ in range(n):
                t1 = time.perf_counter()
                image_predict(served, one, limits)
                lat.append(time.perf_counter() - t1)
            return stats(lat, time.perf_counter() - t0)

        def batched() -> dict[str, float]:
            lat, t0 = [], time.perf_counter()
            for _ in range(max(1, n // conc)):
                t1 = time.perf_counter()
                image_predict(served, many, limits)
                lat.append(time.perf_counter() - t1)
            wall = time.perf_counter() - t0
            return {**stats(lat, wall), "per_s": len(lat) * conc / wall}  # images per second

        servers = {}
        try:
            for batch in (32, 1):  # the default, and batching off
                port = free_port()
                servers[batch] = (port, subprocess.Popen(
                    [sys.executable, "-m", "archlab", "serve", str(run), "--port", str(port),
                     "--max-batch", str(batch)], stderr=subprocess.PIPE, text=True))  # fmt: skip
            for port, proc in servers.values():
                wait_for(proc, port)
            payload = body(image)
            on, off = servers[32][0], servers[1][0]
            for port in (on, off):
                http_load(port, payload, min(8, n), 1, args.max_seconds)  # warm-up
            rounds: list[dict[str, dict[str, float]]] = []
            # Interleaved rounds: a burst of the other jobs on the machine hits every kind
            # alike instead of one; each kind's median round is reported.
            for _ in range(args.rounds):
                rounds.append({
                    "direct": direct(), "batched": batched(),
                    "seq": http_load(on, payload, n, 1, args.max_seconds),
                    "par": http_load(on, payload, n, conc, args.max_seconds),
                    "par_off": http_load(off, payload, n, conc, args.max_seconds),
                })  # fmt: skip
        finally:
            for _, proc in servers.values():
                proc.send_signal(signal.SIGINT)
                proc.communicate(timeout=30)
        load_after = os.getloadavg()

    print(f"run: {run.name} ({served.cfg.model.name}, {served.task.fitted.size} px); torch "
          f"threads {torch.get_num_threads()}, cores {os.cpu_count()}")  # fmt: skip
    print(
        f"load average (1, 5 min) before {load_before[0]:.2f} {load_before[1]:.2f}, after "
        f"{load_after[0]:.2f} {load_after[1]:.2f}: a shared machine, compare the ratios"
    )
    print(f"median of {len(rounds)} interleaved rounds of {n} requests each")
    med = {k: median_round(rounds, k) for k in rounds[0]}
    direct, batched, seq, par, off = (med[k] for k in ("direct", "batched", "seq", "par",
                                                        "par_off"))  # fmt: skip
    rows = {"direct (in-process, 1 image/call)": direct,
            f"batched (in-process, {conc} images/call)": batched,
            "http, 1 at a time": seq, f"http, {conc} concurrent": par,
            f"http, {conc} concurrent, --max-batch 1": off}  # fmt: skip
    print(f"{'':38s} {'n':>4s} {'p50 ms':>8s} {'p95 ms':>8s} {'images/s':>9s}")
    for k, v in rows.items():
        print(f"{k:38s} {v['n']:4d} {v['p50_ms']:8.1f} {v['p95_ms']:8.1f} {v['per_s']:9.1f}")
    errors = sum(r[k].get("errors", 0) for r in rounds for k in ("seq", "par", "par_off"))
    print(f"http errors: {errors}")
    print(f"ratio http 1-at-a-time p50 / direct p50: {seq['p50_ms'] / direct['p50_ms']:.2f}")
    print(f"ratio http {conc}-concurrent throughput / direct: {par['per_s'] / direct['per_s']:.2f}")
    print(f"ratio batched throughput / direct (in-process, {conc} images a call): "
          f"{batched['per_s'] / direct['per_s']:.2f}")  # fmt: skip
    print(f"ratio http {conc}-concurrent throughput, server batching on / off: "
          f"{par['per_s'] / off['per_s']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
