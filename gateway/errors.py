"""Errors the gateway makes itself, in the engine's JSON error shape.

The engine answers failures as `{"type": <exception class>, "message": …, "code": null}`
(engine-rest's ExceptionHandler); clients parse that shape, so gateway-made errors use it
too, with types named after what went wrong at the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class GatewayError:
    status: int
    type: str
    message: str


def upstream_unreachable(detail: str) -> GatewayError:
    return GatewayError(502, "UpstreamUnavailableException", f"Engine unreachable: {detail}")


def upstream_timeout(detail: str) -> GatewayError:
    return GatewayError(504, "UpstreamTimeoutException", f"Engine did not answer in time: {detail}")


def not_found(path: str) -> GatewayError:
    return GatewayError(
        404, "NotFoundException", f"The gateway serves only /engine-rest, not {path!r}"
    )


def bad_request(message: str) -> GatewayError:
    return GatewayError(400, "InvalidRequestException", message)


def error_response(error: GatewayError) -> web.Response:
    return web.json_response(
        {"type": error.type, "message": error.message, "code": None}, status=error.status
    )
