"""Errors the gateway makes itself, in the engine's JSON error shape.

The engine answers failures as `{"type": <exception class>, "message": …, "code": null}`
(engine-rest's ExceptionHandler); clients parse that shape, so gateway-made errors use it
too, with types named after what went wrong at the gateway.
"""

from __future__ import annotations

import json
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


def upstream_invalid(parser_message: str) -> GatewayError:
    # The parser's own words only: what follows them quotes the engine's bytes.
    reason = parser_message.split(":", 1)[0].strip()
    return GatewayError(
        502, "UpstreamInvalidResponseException", f"The engine's answer is not valid HTTP: {reason}"
    )


def not_found(path: str) -> GatewayError:
    return GatewayError(
        404,
        "NotFoundException",
        f"The gateway serves only the engine's API (--other-paths refuse), not {path!r}",
    )


def too_large(limit_bytes: int) -> GatewayError:
    return GatewayError(
        413,
        "PayloadTooLargeException",
        f"The request body is larger than the gateway's limit of {limit_bytes} bytes.",
    )


def client_too_slow(timeout_seconds: float) -> GatewayError:
    return GatewayError(
        408,
        "RequestTimeoutException",
        f"The request body stalled for more than {timeout_seconds:g} s; "
        "the engine stored nothing of it.",
    )


def shutting_down() -> GatewayError:
    return GatewayError(
        503,
        "ServiceUnavailableException",
        "The gateway is shutting down and cut this request; the engine stored nothing of it.",
    )


def malware_found(signature: str, subject: str | None, direction: str) -> GatewayError:
    """`subject`: what was refused ("The file 'a.pdf'"); None: the whole upload or download."""
    named = f"The {direction}" if subject is None else subject
    stored = " The engine stored nothing of it." if direction == "upload" else ""
    return GatewayError(
        422,
        "MalwareFoundException",
        f"{named} was refused: the virus scanner found {signature}.{stored}",
    )


def scan_unavailable(reason: str) -> GatewayError:
    return GatewayError(
        503,
        "ScanUnavailableException",
        f"The upload could not be scanned for malware ({reason}), so it was refused; "
        "the engine stored nothing of it. Try again later.",
    )


def digest_mismatch(field_name: str, algorithm: str, computed: str) -> GatewayError:
    return GatewayError(
        400,
        "DigestMismatchException",
        f"The {field_name} {algorithm} digest does not match the uploaded content, whose "
        f"{algorithm} is {computed}; the engine stored nothing of it.",
    )


def bad_request(message: str) -> GatewayError:
    return GatewayError(400, "InvalidRequestException", message)


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))  # as the engine's Jackson writes it


def error_response(error: GatewayError) -> web.Response:
    return web.json_response(
        {"type": error.type, "message": error.message, "code": None},
        status=error.status,
        dumps=_compact,
    )
