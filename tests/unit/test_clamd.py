from __future__ import annotations

import pytest

from gateway import clamd
from gateway.clamd import ScanFailed, Verdict


def test_clamds_answers_are_read_as_verdicts() -> None:
    assert clamd.parse_reply(b"stream: OK") == Verdict(None)
    assert clamd.parse_reply(b"stream: Win.Test.EICAR_HDB-1 FOUND") == Verdict(
        "Win.Test.EICAR_HDB-1"
    )
    assert clamd.parse_reply(b"stream: OK").clean
    assert not clamd.parse_reply(b"stream: X FOUND").clean


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (b"INSTREAM size limit exceeded. ERROR", "size limit exceeded"),
        (b"", "closed the connection"),
        (b"UNKNOWN COMMAND", "UNKNOWN COMMAND"),
        (b"stream: FOUND", "stream: FOUND"),
    ],
)
def test_anything_else_is_a_failed_scan_saying_what_clamd_said(reply: bytes, said: str) -> None:
    with pytest.raises(ScanFailed, match=said):
        clamd.parse_reply(reply)


def test_addresses_are_tcp_host_and_port_or_a_unix_socket_path() -> None:
    assert clamd.parse_address("tcp://127.0.0.1:3310").port == 3310
    assert clamd.parse_address("tcp://[::1]:3310").host == "::1"
    assert clamd.parse_address("unix:///run/clamav/clamd.ctl").path == "/run/clamav/clamd.ctl"


@pytest.mark.parametrize(
    "url",
    ["127.0.0.1:3310", "tcp://127.0.0.1", "tcp://:3310", "tcp://h:3310/x", "unix://", "http://h:1"],
)
def test_other_addresses_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="tcp://host:port or unix:///path"):
        clamd.parse_address(url)
