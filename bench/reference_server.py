"""`python -m bench.reference_server`: the reference fan-out, a plain `websockets` server using `broadcast()`.

It pushes the same payloads at the same rate as bench.driver writes into our store (same Feed, same message
encoding), each stamped with its slot on that schedule, as bench.driver stamps ours. With --wait-start it pushes
nothing until `GET /start` (clients connect to an idle server, as with ours). `GET /stats` returns the stamps sent
so far. Bounded: exits after --max-seconds or on SIGTERM.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import broadcast, serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from bench.driver import Feed
from bench.payload import DEFAULT_BYTES
from bench.protocol import encode_snapshot, encode_update

CLIENTS: set = set()


class InitialSync:
    """With --sync, what a new client is sent before anything else, as our /ws does: a hello, one snapshot per
    account (each encoded once per change, as ours reuses its frames) and a status."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.encoded: dict[int, tuple[int | None, bytes]] = {}

    def messages(self) -> list[str]:
        out = [orjson.dumps({"type": "hello", "protocol": 2, "server_time": time.time_ns() // 1_000_000,
                             "accounts": self.feed.accounts}).decode()]
        for account, snapshot in self.feed.snapshots.items():
            cached = self.encoded.get(account)
            if cached is None or cached[0] != snapshot.get("seq"):
                cached = self.encoded[account] = (snapshot.get("seq"), encode_snapshot(snapshot))
            out.append(cached[1].decode())
        out.append(orjson.dumps({"type": "status", "server_time": time.time_ns() // 1_000_000,
                                 "clients": {"websocket": len(CLIENTS)}}).decode())
        return out


SYNC: InitialSync | None = None


async def handler(ws) -> None:
    if SYNC is not None:
        for message in SYNC.messages():
            await ws.send(message)
    CLIENTS.add(ws)
    try:
        async for _ in ws:  # subscribe frames and anything else are ignored: every client gets everything
            pass
    finally:
        CLIENTS.discard(ws)


async def pump(feed: Feed, rate_hz: float, stop: asyncio.Event, go: asyncio.Event, pumping: asyncio.Event) -> None:
    await go.wait()
    interval, start, wall, k = 1.0 / rate_hz, time.monotonic(), time.time() * 1000, 0
    while not stop.is_set() and pumping.is_set():
        # Always yield, even when behind schedule: a saturated pump must not starve the loop's I/O.
        await asyncio.sleep(max(0.0, start + k * interval - time.monotonic()))
        # Stamped with its slot on the schedule, as bench.driver stamps ours: a saturated loop broadcasts late
        # (at 5,000 clients it sent about 11 of its 20 changes a second), and that lateness is latency a client
        # sees. Stamped at send time, the backlog was invisible and only the changes it got to were timed.
        change = feed.next_change(due_ms=wall + k * interval * 1000)
        broadcast(CLIENTS, encode_update(change).decode())  # str: one text frame, encoded once
        k += 1


async def main_async(args: argparse.Namespace) -> None:
    global SYNC
    feed = Feed(list(range(args.first_account, args.first_account + args.accounts)), args.bytes)
    if args.sync:
        SYNC = InitialSync(feed)
    loop = asyncio.get_running_loop()
    stop, go, pumping = asyncio.Event(), asyncio.Event(), asyncio.Event()
    pumping.set()
    if not args.wait_start:
        go.set()

    def process_request(connection, request):
        if request.path.startswith("/start"):  # clients are connected: push (for ?seconds=N), as our driver does
            query = parse_qs(urlsplit(request.path).query)
            if "seconds" in query:
                loop.call_later(float(query["seconds"][0]), pumping.clear)
            go.set()
            return Response(200, "OK", Headers({"Content-Length": "0"}), b"")
        if request.path == "/stop":  # the measurement is over: stop pushing, so /stats answers promptly
            pumping.clear()
            return Response(200, "OK", Headers({"Content-Length": "0"}), b"")
        if request.path == "/stats":
            body = json.dumps({"stamps": feed.stamps, "clients": len(CLIENTS)}).encode()
            return Response(200, "OK", Headers({"Content-Type": "application/json",
                                                "Content-Length": str(len(body))}), body)
        return None

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    server = await serve(handler, "127.0.0.1", args.port, compression=None, ping_interval=None, max_queue=None,
                         process_request=process_request, backlog=4096, close_timeout=1)
    port = server.sockets[0].getsockname()[1]
    print(f"reference listening on ws://127.0.0.1:{port}/", flush=True)
    tasks = [asyncio.create_task(pump(feed, args.rate, stop, go, pumping))] if args.rate > 0 else []
    try:
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    except TimeoutError:
        pass
    stop.set()
    for task in tasks:
        task.cancel()
    server.close()
    try:  # clients that went away without a close frame must not hold the exit
        await asyncio.wait_for(server.wait_closed(), 5)
    except TimeoutError:
        pass


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.reference_server")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--accounts", type=int, default=10)
    p.add_argument("--first-account", type=int, default=1000)
    p.add_argument("--rate", type=float, default=20.0, help="changes per second over all accounts; 0 = idle")
    p.add_argument("--bytes", type=int, default=DEFAULT_BYTES)
    p.add_argument("--max-seconds", type=float, default=900)
    p.add_argument("--wait-start", action="store_true", help="push nothing until GET /start")
    p.add_argument("--sync", action="store_true", help="send each new client a hello, every account's snapshot and "
                                                       "a status first, as our /ws does")
    args = p.parse_args(argv)
    from bench.wsclient import raise_fd_limit

    raise_fd_limit(30000)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
