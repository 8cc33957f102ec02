"""A loopback WebSocket server that plays recorded Binance frames (tests only).

It keeps its position across connections, so a client that reconnects gets
the stream from where it stopped; faults are injected on the first connection.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve

ROOT = Path(__file__).resolve().parents[2]
RECORDING = ROOT / "data" / "ws" / "binance_btcusdt_combined_2021-01-08.jsonl"


def recorded_lines() -> list[dict]:
    with RECORDING.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def recorded_frames() -> list[str]:
    return [row["frame"] for row in recorded_lines()]


class ReplayServer:
    """Plays ``frames`` as fast as possible on ws://127.0.0.1:<free port>/stream.

    drop_after: on the first connection, after this many frames close the
        connection (cleanly; ``abort=True``: reset TCP without a close frame).
    silent_after: on the first connection, after this many frames send nothing
        more and keep the connection open until the client leaves.
    """

    def __init__(self, frames: list[str], *, drop_after: int | None = None, abort: bool = False,
                 silent_after: int | None = None, port: int = 0) -> None:
        self.frames = frames
        self.drop_after, self.abort, self.silent_after = drop_after, abort, silent_after
        self.pos = 0
        self.connections = 0
        self.paths: list[str] = []
        self.port = port
        self._server = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream"

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.paths.append(ws.request.path)
        first = self.connections == 1
        sent = 0
        while self.pos < len(self.frames):
            if first and sent == self.drop_after:
                if self.abort:
                    ws.transport.abort()
                else:
                    await ws.close()
                return
            if first and sent == self.silent_after:
                await ws.wait_closed()
                return
            await ws.send(self.frames[self.pos])
            self.pos += 1
            sent += 1
        await ws.wait_closed()

    async def __aenter__(self) -> ReplayServer:
        self._server = await serve(self._handler, "127.0.0.1", self.port, compression=None)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        await asyncio.wait_for(self._server.wait_closed(), 5)
