"""The load generator's shortcuts read exactly what the full decoders read.

`bench.protocol.quick_update` pulls seq/prev_seq/account/stamp out of update bytes; `bench.leanws` splits frames
itself once open. Both are checked against the real encoders (ours and the reference's) and against `websockets`'
own framing, including the hand-back to the library at the first frame it does not split.
"""
from __future__ import annotations

import asyncio

import orjson
from websockets.asyncio.server import serve

from app.ws import messages
from bench.leanws import open_client
from bench.payload import make_snapshot, stamp
from bench.protocol import encode_update, quick_update, stamp_of
from core.store import Change


def _full(raw: bytes) -> tuple:
    msg = orjson.loads(raw)
    return msg["seq"], msg["prev_seq"], msg["account_index"], stamp_of(msg)


def test_quick_update_matches_a_full_decode_for_both_servers_encodings() -> None:
    snapshot = make_snapshot(1000, 3)
    for prev in (None, 41):
        snapshot["seq"], snapshot["prev_seq"] = 42, prev
        stamp(snapshot)
        ours = messages.update(Change(42, snapshot), ttl_s=5.0).encode()
        for raw in (encode_update(snapshot), ours):
            assert quick_update(raw) == _full(raw)
    assert quick_update(orjson.dumps({"type": "status", "status": {}})) is None
    assert quick_update(messages.heartbeat(5).encode()) is None


def test_frame_splitting_delivers_every_size_then_hands_the_close_back_to_the_library() -> None:
    payloads = ["a" * 10, "b" * 300, "c" * 70_000, "d" * 126, "e" * 65_536]

    async def handler(ws) -> None:  # noqa: ANN001 - websockets' connection
        for payload in payloads:
            await ws.send(payload)
        await ws.recv()  # the client has them all: now a close, which the splitter must hand back
        await ws.close(1000, "bye")

    async def run() -> tuple[list[bytes], str, bool]:
        got: list[bytes] = []
        all_in = asyncio.Event()

        def on_message(payload: bytes) -> None:
            got.append(payload)
            if len(got) == len(payloads):
                all_in.set()

        async with serve(handler, "127.0.0.1", 0, compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            client = await open_client(f"ws://127.0.0.1:{port}/", on_message)
            await asyncio.wait_for(all_in.wait(), 10)
            split_here = client.fast
            client.send_text("done")
            reason = await asyncio.wait_for(client.done, 10)
            client.close()
        return got, reason, split_here and not client.fast

    got, reason, handed_back = asyncio.run(run())
    assert got == [p.encode() for p in payloads]
    assert reason == "1000 bye" and handed_back
