"""Decode endpoint latency: one 64x64 image, CPU, PNG included, through the real HTTP server.

    python bench/bench_decode.py --atlas ATLAS --run RUN [--requests 300] [--repeats 5] [--clients 32 --seconds 20]

Starts uvicorn on 127.0.0.1 (a free port) over the atlas, then:
1. sequential: --requests GET /api/runs/RUN/decode.png?z=… with random z, repeated --repeats times;
   reports p50/p95 per repeat and the median of each; the baseline is GET /api/runs (JSON, no model)
   timed in the same loop, so the ratio shows what decoding + PNG costs over the HTTP round trip;
2. concurrent: --clients threads calling decode for --seconds; reports errors and p99.
All traffic stays on the loopback interface.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import threading
import time

import httpx
import numpy as np
import uvicorn

from latentatlas.server import create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values, q):
    return float(np.percentile(np.asarray(values) * 1e3, q))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--atlas", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(args.atlas), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=30) as c:
        for _ in range(200):
            try:
                if c.get("/api/runs").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        dim = c.get(f"/api/runs/{args.run}").json()["latent_dim"]
        rng = np.random.default_rng(0)

        def zurl():
            return f"/api/runs/{args.run}/decode.png?z=" + ",".join(f"{v:.3f}" for v in rng.normal(size=dim))

        c.get(zurl())  # load the model once
        p50s, p95s, base50 = [], [], []
        for _ in range(args.repeats):
            dec, ref = [], []
            for _ in range(args.requests):
                t0 = time.perf_counter()
                r = c.get(zurl())
                dec.append(time.perf_counter() - t0)
                assert r.status_code == 200 and r.headers["content-type"] == "image/png"
                t0 = time.perf_counter()
                c.get("/api/runs")
                ref.append(time.perf_counter() - t0)
            p50s.append(pct(dec, 50))
            p95s.append(pct(dec, 95))
            base50.append(pct(ref, 50))
        print(f"decode p50 per repeat (ms): {[round(v, 2) for v in p50s]}")
        print(f"decode p95 per repeat (ms): {[round(v, 2) for v in p95s]}")
        print(f"median p50 {statistics.median(p50s):.2f} ms, median p95 {statistics.median(p95s):.2f} ms (target p95 <= 25 ms); "
              f"GET /api/runs p50 {statistics.median(base50):.2f} ms; ratio decode/list p50 {statistics.median(p50s) / statistics.median(base50):.2f}")

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + args.seconds

    def client(seed: int) -> None:
        r_ng = np.random.default_rng(seed)
        with httpx.Client(base_url=base, timeout=30) as cc:
            while time.perf_counter() < stop:
                z = ",".join(f"{v:.3f}" for v in r_ng.normal(size=dim))
                t0 = time.perf_counter()
                try:
                    ok = cc.get(f"/api/runs/{args.run}/decode.png?z={z}").status_code == 200
                except httpx.HTTPError:
                    ok = False
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    errors[0] += 0 if ok else 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    server.should_exit = True
    thread.join(timeout=10)
    print(f"{args.clients} clients for {args.seconds:.0f} s: {len(latencies)} requests, {errors[0]} errors, "
          f"p50 {pct(latencies, 50):.1f} ms, p99 {pct(latencies, 99):.1f} ms, {len(latencies) / args.seconds:.0f} req/s")


if __name__ == "__main__":
    main()
