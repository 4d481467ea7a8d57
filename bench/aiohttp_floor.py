"""A MEASURING INSTRUMENT, not a gateway: the least an aiohttp-server gateway pays for a
small call, for bench/engine_cases.py to set beside the gateway in front of the same engine.

aiohttp's low-level server (no Application, router or middleware) hands each request to
one handler, which asks the engine on the gateway's own connection (gateway/relay.py) with
the client's headers as they came, and answers with the engine's status, end-to-end
headers (gateway/headers.py) and body: read whole, or a small chunked body as the engine
framed it, as the gateway sends both. Nothing else: no routes, limits, names, metrics,
access line, X-Forwarded-* or error shapes; a chunked body too large to read whole is
refused. Small calls only (`GET /engine`, a task query).

    .venv/bin/python bench/aiohttp_floor.py PORT ENGINE_HOST ENGINE_PORT
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web
from aiohttp.http_writer import StreamWriter
from multidict import CIMultiDict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway import headers, relay

HOST = "127.0.0.1"


def handler(pool: relay.Pool) -> web.Server:
    async def answer(request: web.BaseRequest) -> web.StreamResponse:
        asked = CIMultiDict(request.headers)
        path = request.rel_url.raw_path_qs
        async with await relay.ask(pool, request.method, path, asked) as engine:
            sent = headers.downstream_response_headers(engine.headers)
            if engine.framing is not relay.Framing.CHUNKED:
                return web.Response(status=engine.status, headers=sent, body=await engine.read())
            framed = await engine.read_framed()
            if framed is None:
                raise web.HTTPBadGateway(text="too large for the floor")
            response = web.StreamResponse(status=engine.status, headers=sent)
            writer = await response.prepare(request)
            assert isinstance(writer, StreamWriter)
            writer.chunked = False  # the engine's chunks as they came
            await response.write(bytes(framed))
            await response.write_eof()
            return response

    return web.Server(answer, access_log=None)


async def serve(port: int, engine_host: str, engine_port: int) -> None:
    pool = relay.Pool(engine_host, engine_port, connect_timeout=5.0, read_timeout=60.0)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(handler(pool), HOST, port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
