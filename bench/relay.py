"""`python -m bench.relay`: the end-to-end reference, the seed project's design at its cheapest.

One process, no store, no worker: it subscribes to Lighter's public account channels (`account_all/{i}` and
`user_stats/{i}`) on the upstream WebSocket (the simulator, here) and relays every update frame it receives, as
received, to every connected client with `websockets.broadcast()` (each frame encoded once). It keeps nothing
and sends nothing on connect. It answers Lighter's app-level pings itself and forwards no control frames, so every
message a client receives is one upstream update, in the same order for every client: a client can name a frame
by its ordinal since a quiet moment. Prints `relay listening on ws://127.0.0.1:<port>/`; exits on SIGTERM or after
--max-seconds.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal

import uvloop
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, broadcast, serve

CHANNELS = ("account_all", "user_stats")  # public; account_all_orders needs an auth token the relay does not mint
CLIENTS: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    CLIENTS.add(ws)
    try:
        async for _ in ws:  # every client gets every frame; what it sends is ignored
            pass
    finally:
        CLIENTS.discard(ws)


async def relay(upstream: str, accounts: list[int], stop: asyncio.Event) -> None:
    async with connect(upstream, compression=None, max_size=2**24, ping_interval=None) as ws:
        for account in accounts:
            for channel in CHANNELS:
                await ws.send(json.dumps({"type": "subscribe", "channel": f"{channel}/{account}"}))
        async for raw in ws:
            if stop.is_set():
                return
            text = raw if isinstance(raw, str) else raw.decode()
            # The frame type leads every Lighter frame; only updates are relayed (not `connected`, `subscribed/*`).
            head = text[:40]
            if '"type":"ping"' in head.replace(" ", ""):
                await ws.send('{"type":"pong"}')
            elif '"update/' in head:
                broadcast(CLIENTS, text)


async def main_async(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    server = await serve(handler, "127.0.0.1", args.port, compression=None, ping_interval=None, max_queue=None,
                         backlog=4096, close_timeout=1)
    print(f"relay listening on ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/", flush=True)
    accounts = [int(a) for a in args.accounts.split(",") if a]
    task = asyncio.create_task(relay(args.upstream, accounts, stop))
    try:
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    except TimeoutError:
        pass
    stop.set()
    task.cancel()
    server.close()
    try:
        await asyncio.wait_for(server.wait_closed(), 5)
    except TimeoutError:
        pass


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.relay")
    p.add_argument("--upstream", required=True, help="Lighter WebSocket URL, e.g. ws://127.0.0.1:8765/stream")
    p.add_argument("--accounts", required=True, help="comma-separated account indexes")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=900)
    args = p.parse_args(argv)
    from bench.wsclient import raise_fd_limit

    raise_fd_limit(30000)
    uvloop.run(main_async(args))  # as uvicorn runs the seed project when uvloop is installed


if __name__ == "__main__":
    main()
