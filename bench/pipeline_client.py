"""WebSocket clients for the pipeline bench, in their own process (they must not share
the server's GIL).

``python -m bench.pipeline_client WS_URL ORIGIN COUNT [--connections N] [--stall]``
opens N connections to the run WebSocket, prints ``ready`` once every connection has had
its first summary (so it is in the run's group), then reads until each connection has
seen ``COUNT`` events, acking every batch, verifying ``seq`` is gapless with nothing
twice, and measuring emit → receive latency from the ``emit_ts`` attr. It prints one
JSON line with the results per connection.

``--stall`` makes every connection stop reading after its first batch until a line
arrives on stdin (the server must not buffer without bound meanwhile), then read again —
reconnecting with ``?after=<last seq>`` if the server dropped it — and verify it still
gets it all.

Frames are decoded with orjson, as a browser decodes with its native ``JSON.parse``: with
the stdlib decoder ten clients would spend more of the two cores than the server does.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from array import array
from typing import Any

import orjson

RECV_TIMEOUT_S = 60.0


class Follower:
    def __init__(self, url: str, origin: str, count: int, resume: asyncio.Event | None) -> None:
        self.url, self.origin, self.count = url, origin, count
        # Set when a stalled follower may read again; None: never stall.
        self.resume = resume
        self.last = 0
        self.received = 0
        self.frames = 0
        self.gaps = 0
        self.twice = 0
        self.reconnects = 0
        self.latency_s = array("d")
        self.first_recv = self.last_recv = 0.0
        self.ready = asyncio.Event()
        self.error = ""

    async def run(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            while self.last < self.count:
                try:
                    await self._follow()
                except ConnectionClosed as exc:
                    if self.received == 0:
                        raise
                    self.reconnects += 1
                    self.error = f"reconnected after {type(exc).__name__}"
        except Exception as exc:  # noqa: BLE001 - reported in the result line
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.ready.set()

    async def _follow(self) -> None:
        from websockets.asyncio.client import connect

        stalling = self.resume is not None and not self.resume.is_set()
        # A stalled client answers no pings either: our own keepalive must not give up on it.
        async with connect(f"{self.url}?after={self.last}", origin=self.origin, max_size=None, compression=None,
                           ping_interval=None if stalling else 20) as ws:
            while self.last < self.count:
                raw = await asyncio.wait_for(ws.recv(decode=False), RECV_TIMEOUT_S)
                now = time.time()
                message = orjson.loads(raw)
                kind = message.get("type")
                if kind == "summary":
                    self.ready.set()
                    continue
                if kind != "events":
                    raise RuntimeError(f"unexpected message {raw[:200]!r}")
                self._check(message["events"], now)
                await ws.send(f'{{"type":"ack","seq":{self.last}}}')
                if self.resume is not None and not self.resume.is_set():
                    await self.resume.wait()  # not reading: frames pile up, then TCP pushes back

    def _check(self, events: list[dict[str, Any]], now: float) -> None:
        if not self.first_recv:
            self.first_recv = now
        self.last_recv = now
        self.received += len(events)
        self.frames += 1
        seqs = [e["seq"] for e in events]
        first = self.last + 1
        if seqs == list(range(first, first + len(seqs))):  # the usual case, checked in C
            self.last = seqs[-1] if seqs else self.last
            self.latency_s.extend([now - e["attrs"]["emit_ts"] for e in events])
            return
        last = self.last
        for event in events:
            seq = event["seq"]
            if seq <= last:
                self.twice += 1
                continue
            if seq != last + 1:
                self.gaps += seq - last - 1
            last = seq
            self.latency_s.append(now - event["attrs"]["emit_ts"])
        self.last = last

    def result(self) -> dict[str, Any]:
        ordered = sorted(self.latency_s)

        def pct(p: float) -> float | None:
            return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000 if ordered else None

        return {
            "last": self.last, "received": self.received, "frames": self.frames, "gaps": self.gaps, "twice": self.twice,
            "reconnects": self.reconnects, "first_recv": self.first_recv, "last_recv": self.last_recv,
            "p50_ms": pct(50), "p99_ms": pct(99), "max_ms": ordered[-1] * 1000 if ordered else None, "error": self.error,
        }


async def main_async(args: argparse.Namespace) -> None:
    resume = asyncio.Event() if args.stall else None
    followers = [Follower(args.url, args.origin, args.count, resume) for _ in range(args.connections)]
    tasks = [asyncio.create_task(f.run()) for f in followers]
    for follower in followers:
        await follower.ready.wait()
    print("ready", flush=True)
    cpu_at_ready = time.process_time()
    if resume is not None:
        await asyncio.to_thread(sys.stdin.readline)
        resume.set()
    await asyncio.gather(*tasks)
    cpu_s = time.process_time() - cpu_at_ready
    for follower in followers:
        print(json.dumps({**follower.result(), "process_cpu_s": cpu_s / len(followers)}), flush=True)


def main() -> None:
    # Each frame decodes into thousands of dicts that live until checked: the cyclic
    # collector would keep rescanning them for nothing (nothing here makes cycles that matter
    # for a run of a minute or two), and the client would measure its own GC.
    gc.disable()
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("origin")
    parser.add_argument("count", type=int)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--stall", action="store_true")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
