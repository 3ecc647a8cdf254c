"""The socket's own cut of whole text frames (``streamer.connection._Socket``) hands over exactly
what websockets' parser would, in order, whatever the TCP chunks cut and whatever else is mixed in.

A real websockets server writes a byte stream built by websockets' own framing in chunks of
random sizes (a chunk may end inside a header, inside a 16-bit length, inside a payload): short
and 16-bit-length text frames, a binary frame, pings (answered by websockets), a 64-bit-length
frame, then a fragmented message and more frames, which websockets' parser and ``recv`` carry.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode

from streamer.connection import _Socket

pytestmark = pytest.mark.anyio


class Recorder:
    """Stands where the connection's reader stands: records each message handed over."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    def _deliver(self, ws: _Socket, message: bytes) -> None:
        self.messages.append(bytes(message))


def stream(rng: random.Random) -> tuple[bytes, list[bytes]]:
    """The server's bytes and the messages a client must receive from them, in order."""
    frames: list[Frame] = []
    expected: list[bytes] = []

    def text(payload: bytes, opcode: Opcode = Opcode.TEXT) -> None:
        frames.append(Frame(opcode, payload))
        expected.append(payload)

    for i in range(400):
        size = rng.choice([0, 1, 60, 125, 126, 127, 300, 4_000, 65_535])
        text(bytes([48 + i % 10]) * size)
        if i % 37 == 0:
            frames.append(Frame(Opcode.PING, b"p%d" % i))
        if i % 101 == 0:
            text(b"\x00\x01binary", Opcode.BINARY)
    text(b"x" * 70_000)  # a 64-bit length: websockets' parser takes it
    frames += [Frame(Opcode.TEXT, b"frag", fin=False), Frame(Opcode.CONT, b"mented", fin=False), Frame(Opcode.CONT, b"!")]
    expected.append(b"fragmented!")
    for i in range(50):
        text(b"after %d" % i)
    return b"".join(frame.serialize(mask=False, extensions=[]) for frame in frames), expected


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_whole_frames_cut_by_any_chunk_boundary_arrive_exactly_and_in_order(seed: int) -> None:
    rng = random.Random(seed)
    data, expected = stream(rng)

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()  # the client is ready
        at = 0
        while at < len(data):
            step = rng.randint(1, 97)
            ws.transport.write(data[at : at + step])
            at += step
            if rng.random() < 0.3:
                await asyncio.sleep(0)  # let the client read a chunk cut here
        await ws.wait_closed()

    recorder = Recorder()

    class Recorded(_Socket):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.owner = recorder  # type: ignore[assignment]
            super().connection_made(transport)

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", create_connection=Recorded, max_size=2**20) as ws:
            await ws.send("ready")
            async with asyncio.timeout(30):
                while len(recorder.messages) < len(expected):
                    recorder.messages.append(await ws.recv(decode=False))
    assert len(recorder.messages) == len(expected)
    assert recorder.messages == expected
