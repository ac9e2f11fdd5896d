#!/usr/bin/python3
"""A minimal wstrace-protocol server on Python `websockets` (Debian
python3-websockets), for comparison runs in bench/run.

Same client protocol as wstrace (Subscribe, Unsubscribe, Message, Ping;
Errors with the same codes), no telemetry, one process, asyncio.
Usage: /usr/bin/python3 server.py [--host 127.0.0.1] [--port 0] [--compression on|off]
Prints `listening port=NNNN` on stderr once it accepts connections.
"""
import argparse
import asyncio
import http
import json
import re
import signal
import sys

import websockets

CHANNEL = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")
channels = {}  # name -> set of connections


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


async def handler(ws):
    mine = set()

    async def reply(obj, msg_id):
        if msg_id is not None:
            obj["id"] = msg_id
        await ws.send(dumps(obj))

    async def error(code, message, msg_id=None):
        await reply({"type": "Error", "code": code, "message": message}, msg_id)

    try:
        async for data in ws:
            if isinstance(data, bytes):
                await error("unsupported_frame", "binary frames are not supported")
                continue
            try:
                msg = json.loads(data)
            except ValueError:
                await error("invalid_json", "not JSON")
                continue
            if not isinstance(msg, dict):
                await error("invalid_json", "not a JSON object")
                continue
            msg_id = msg.get("id")
            if not isinstance(msg_id, (str, int, float)) or isinstance(msg_id, bool):
                msg_id = None
            kind = msg.get("type")
            if not isinstance(kind, str):
                await error("missing_field", "type", msg_id)
                continue
            if kind == "Ping":
                await reply({"type": "Pong"}, msg_id)
                continue
            if kind not in ("Subscribe", "Unsubscribe", "Message"):
                await error("unknown_type", kind, msg_id)
                continue
            channel = msg.get("channel")
            if not isinstance(channel, str):
                await error("missing_field", "channel", msg_id)
                continue
            if not CHANNEL.match(channel):
                await error("invalid_channel", "bad channel name", msg_id)
                continue
            if kind == "Subscribe":
                if channel not in mine:
                    if len(mine) >= 100:
                        await error("too_many_subscriptions", "limit 100", msg_id)
                        continue
                    mine.add(channel)
                    channels.setdefault(channel, set()).add(ws)
                await reply({"type": "Subscribed", "channel": channel}, msg_id)
            elif kind == "Unsubscribe":
                if channel not in mine:
                    await error("not_subscribed", channel, msg_id)
                    continue
                mine.discard(channel)
                peers = channels.get(channel)
                peers.discard(ws)
                if not peers:
                    del channels[channel]
                await reply({"type": "Unsubscribed", "channel": channel}, msg_id)
            else:
                content = msg.get("content")
                if not isinstance(content, str):
                    await error("missing_field", "content", msg_id)
                    continue
                peers = channels.get(channel)
                if peers:
                    # The library's own broadcast: frames once, writes to each.
                    websockets.broadcast(
                        peers, dumps({"type": "Message", "channel": channel, "content": content})
                    )
    except websockets.ConnectionClosed:
        pass
    finally:
        for channel in mine:
            peers = channels.get(channel)
            if peers is not None:
                peers.discard(ws)
                if not peers:
                    del channels[channel]


def only_ws_path(path, _headers):
    if path.split("?", 1)[0] != "/ws":
        return http.HTTPStatus.NOT_FOUND, [], b"not found\n"
    return None


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--compression", choices=["on", "off"], default="off")
    args = parser.parse_args()
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with websockets.serve(
        handler,
        args.host,
        args.port,
        compression="deflate" if args.compression == "on" else None,
        max_size=1 << 20,
        process_request=only_ws_path,
        backlog=4096,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"listening port={port}", file=sys.stderr, flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main())
