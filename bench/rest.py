"""REST: `wrk` against /api/accounts/<index> (200 and If-None-Match → 304) and against bench.bare_app (200).

Both apps run under the same gunicorn.conf.py; ours keeps rate limiting on with a limit it never reaches. Ours
runs on the configured store (limiter storage in the same Redis) and, for comparison, on the file store
(limiter in process memory).
The bare app serves the exact bytes of our 200 response. Runs are interleaved so drift hits all targets alike.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

from bench import procs, stats

ACCOUNT = 1000
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


@dataclass
class RestConfig:
    seconds: float = 8.0
    runs: int = 3
    threads: int = 2
    connections: int = 50
    store: str = "redis"
    also_stores: tuple[str, ...] = ("file",)  # ours again on these backends (limiter: memory:// without Redis)


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests/s, p50/p99 (ms) and error counts from `wrk --latency` output."""
    def latency(q: str) -> float | None:
        m = re.search(rf"^\s*{q}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        return float(m.group(1)) * UNITS[m.group(2)] if m else None
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    non = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    total = re.search(r"(\d+) requests in", text)
    return {"rps": float(rps.group(1)) if rps else None, "p50_ms": latency("50"), "p99_ms": latency("99"),
            "requests": int(total.group(1)) if total else 0, "non_2xx_3xx": int(non.group(1)) if non else 0,
            "socket_errors": sum(map(int, sock.groups())) if sock else 0}


def wrk(url: str, cfg: RestConfig, headers: dict[str, str] | None = None) -> dict[str, Any]:
    cmd = ["wrk", f"-t{cfg.threads}", f"-c{cfg.connections}", f"-d{cfg.seconds}s", "--latency"]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=cfg.seconds + 60, check=True).stdout
    return parse_wrk(out)


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urlopen(Request(url, headers=headers or {}), timeout=10) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def _start_ours(store: str, tmp: str, stops: list) -> tuple[str, str, bytes]:
    """Our web on a fresh store of `store` kind holding one account; returns (url, etag, 200 body)."""
    env, redis = procs.store_env(store, os.path.join(tmp, store))
    if redis:
        stops.append(redis)
    # The driver writes once and stops: a long CACHE_TTL keeps that data fresh for the whole run, so the ETag never
    # turns `-stale` mid-run (which silently turned the "304" target into 200s).
    env = procs.web_env(env, [ACCOUNT], {"CACHE_TTL": "86400"})
    subprocess.run([sys.executable, "-m", "bench.driver", "--seconds", "0.2", "--rate", "20", "--accounts", "1",
                    "--first-account", str(ACCOUNT)], cwd=procs.ROOT, env={**os.environ, **env}, check=True,
                   stdout=subprocess.DEVNULL)
    web, port = procs.gunicorn("wsgi:app", env)
    stops.insert(0, web)
    url = f"http://127.0.0.1:{port}/api/accounts/{ACCOUNT}"
    status, body, headers = fetch(url)
    etag = headers.get("ETag")
    if status != 200 or not etag:
        raise RuntimeError(f"GET {url} gave {status} (ETag {etag!r}): {body[:200]!r}")
    if fetch(url, {"If-None-Match": etag})[0] != 304:
        raise RuntimeError(f"GET {url} with If-None-Match: {etag} did not answer 304")
    return url, etag, body


def run(cfg: RestConfig, log=print) -> dict[str, Any]:
    stores = [cfg.store] + [s for s in cfg.also_stores if s != cfg.store]
    stops: list = []
    targets: dict[str, tuple[str, dict[str, str] | None]] = {}
    with tempfile.TemporaryDirectory(prefix="lb-bench-") as tmp:
        try:
            for store in stores:
                suffix = "" if store == cfg.store else f"_{store}"
                url, etag, body = _start_ours(store, tmp, stops)
                targets[f"ours_200{suffix}"] = (url, None)
                targets[f"ours_304{suffix}"] = (url, {"If-None-Match": etag})
                if store == cfg.store:
                    body_file = os.path.join(tmp, "body.json")
                    with open(body_file, "wb") as fh:
                        fh.write(body)
                    bare_env = {"BENCH_BODY_FILE": body_file, "DOTENV_FILE": "", "LOG_LEVEL": "WARNING"}
                    bare, bare_port = procs.gunicorn("bench.bare_app:app", bare_env)
                    stops.insert(0, bare)
                    targets = {"bare_200": (f"http://127.0.0.1:{bare_port}/api/accounts/{ACCOUNT}", None), **targets}
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
            for i in range(cfg.runs):
                for name, (target, hdrs) in targets.items():
                    runs[name].append(wrk(target, cfg, hdrs))
                    log(f"rest: run {i + 1} {name}: {runs[name][-1]['rps']} req/s, p99 {runs[name][-1]['p99_ms']} ms")
        finally:
            for item in stops:
                item.stop()
    out: dict[str, Any] = {"config": cfg.__dict__, "body_bytes": len(body), "etag_status": 304,
                           "rate_limit": procs.HIGH_RATE_LIMIT, "store": cfg.store, "targets": {}}
    for name, items in runs.items():
        out["targets"][name] = {"rps": stats.spread([r["rps"] for r in items]),
                                "p99_ms": stats.spread([r["p99_ms"] for r in items]),
                                "p50_ms": stats.spread([r["p50_ms"] for r in items]),
                                "errors": sum(r["non_2xx_3xx"] + r["socket_errors"] for r in items),
                                "runs": items}
    bare_rps = out["targets"]["bare_200"]["rps"]["median"]
    out["ratios"] = {f"{name}_over_bare_200": stats.ratio(t["rps"]["median"], bare_rps)
                     for name, t in out["targets"].items() if name.startswith("ours")}
    return out
