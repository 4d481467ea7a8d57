from __future__ import annotations

from pathlib import Path

import pytest
from yarl import URL

from gateway import metrics, store
from gateway.__main__ import OPTIONS, parse_config
from gateway.config import Config
from gateway.workers import event_loop_factory


def test_defaults() -> None:
    config = parse_config([], {})
    assert config == Config(upstream_url=URL("http://127.0.0.1:8080"))
    assert (config.port, config.admin_port) == (8000, 8001)


def test_flags_set_every_field() -> None:
    config = parse_config(
        [
            "--upstream", "http://127.0.0.1:9090",
            "--host", "192.0.2.1",
            "--port", "9000",
            "--admin-host", "192.0.2.1",
            "--admin-port", "9001",
            "--connect-timeout-seconds", "1.5",
            "--read-timeout-seconds", "7",
            "--drain-timeout-seconds", "3",
            "--upstream-connections", "8",
            "--default-disposition", "inline",
            "--bytes-filename", "none",
            "--json-string-limit-chars", "5000000",
            "--log-level", "debug",
        ],
        {},
    )  # fmt: skip
    assert config == Config(
        upstream_url=URL("http://127.0.0.1:9090"),
        host="192.0.2.1",
        port=9000,
        admin_host="192.0.2.1",
        admin_port=9001,
        connect_timeout_seconds=1.5,
        read_timeout_seconds=7.0,
        drain_timeout_seconds=3.0,
        upstream_connections=8,
        default_disposition="inline",
        bytes_filename="none",
        json_string_limit_chars=5_000_000,
        log_level="debug",
    )


def test_every_flag_has_its_environment_variable() -> None:
    assert [option.env for option in OPTIONS] == [
        "ENGINE_GATEWAY_UPSTREAM",
        "ENGINE_GATEWAY_HOST",
        "ENGINE_GATEWAY_PORT",
        "ENGINE_GATEWAY_ADMIN_HOST",
        "ENGINE_GATEWAY_ADMIN_PORT",
        "ENGINE_GATEWAY_CONNECT_TIMEOUT_SECONDS",
        "ENGINE_GATEWAY_READ_TIMEOUT_SECONDS",
        "ENGINE_GATEWAY_DRAIN_TIMEOUT_SECONDS",
        "ENGINE_GATEWAY_CLIENT_HEADER_TIMEOUT_SECONDS",
        "ENGINE_GATEWAY_CLIENT_BODY_TIMEOUT_SECONDS",
        "ENGINE_GATEWAY_UPSTREAM_CONNECTIONS",
        "ENGINE_GATEWAY_MAX_UPLOAD_BYTES",
        "ENGINE_GATEWAY_DEFAULT_DISPOSITION",
        "ENGINE_GATEWAY_BYTES_FILENAME",
        "ENGINE_GATEWAY_METRICS",
        "ENGINE_GATEWAY_SPLICE",
        "ENGINE_GATEWAY_RELAY",
        "ENGINE_GATEWAY_EVENT_LOOP",
        "ENGINE_GATEWAY_WORKERS",
        "ENGINE_GATEWAY_REFUSE_WHILE_ENGINE_DOWN",
        "ENGINE_GATEWAY_DIGESTS",
        "ENGINE_GATEWAY_CLAMD",
        "ENGINE_GATEWAY_CLAMD_FAILURE",
        "ENGINE_GATEWAY_CLAMD_TIMEOUT_SECONDS",
        "ENGINE_GATEWAY_CLAMD_SCAN_DOWNLOADS",
        "ENGINE_GATEWAY_JSON_STRING_LIMIT_CHARS",
        "ENGINE_GATEWAY_WEBAPP_PATH",
        "ENGINE_GATEWAY_OTHER_PATHS",
        "ENGINE_GATEWAY_DOCUMENT_STORE",
        "ENGINE_GATEWAY_DOCUMENT_STORE_ENDPOINT",
        "ENGINE_GATEWAY_DOCUMENT_KEY_FILE",
        "ENGINE_GATEWAY_OFFLOAD_ABOVE_BYTES",
        "ENGINE_GATEWAY_DOCUMENTS_PATH",
        "ENGINE_GATEWAY_DOCUMENT_LINK_MAX_SECONDS",
        "ENGINE_GATEWAY_DOCUMENT_LINKS",
        "ENGINE_GATEWAY_LOG_LEVEL",
    ]


def test_environment_sets_defaults_and_flags_win() -> None:
    environ = {"ENGINE_GATEWAY_PORT": "9100", "ENGINE_GATEWAY_UPSTREAM": "http://127.0.0.1:1"}
    assert parse_config([], environ).port == 9100
    assert parse_config(["--port", "9200"], environ).port == 9200
    assert parse_config([], environ).upstream_url == URL("http://127.0.0.1:1")


@pytest.mark.parametrize(
    ("argv", "environ"),
    [
        (["--upstream", "ftp://x"], {}),
        (["--upstream", "http://127.0.0.1:8080/engine-rest"], {}),
        (["--read-timeout-seconds", "0"], {}),
        (["--log-level", "loud"], {}),
        (["--default-disposition", "download"], {}),
        ([], {"ENGINE_GATEWAY_BYTES_FILENAME": "name"}),
        ([], {"ENGINE_GATEWAY_PORT": "eighty"}),
        (["--port", "70000"], {}),
        (["--workers", "0"], {}),
        (["--client-header-timeout-seconds", "0"], {}),
        (["--client-body-timeout-seconds", "-1"], {}),
        (["--workers", "2", "--port", "0"], {}),
        (["--clamd", "127.0.0.1:3310"], {}),
        (["--clamd", "tcp://127.0.0.1"], {}),
        (["--clamd", "http://127.0.0.1:3310"], {}),
        (["--clamd-failure", "ajar"], {}),
        (["--clamd-scan-downloads", "on"], {}),
        (["--clamd", "unix:///run/clamd.ctl", "--clamd-timeout-seconds", "0"], {}),
        (["--json-string-limit-chars", "-1"], {}),
        (["--webapp-path", "operaton"], {}),
        (["--webapp-path", "/operaton/"], {}),
        (["--other-paths", "hide"], {}),
    ],
)
def test_invalid_values_exit_with_a_usage_error(
    argv: list[str], environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_config(argv, environ)
    assert exited.value.code == 2
    assert "engine-gateway: error:" in capsys.readouterr().err


def test_the_event_loop_is_asyncios_unless_uvloop_is_asked_for() -> None:
    import uvloop

    assert parse_config([], {}).event_loop == "asyncio"
    assert event_loop_factory("asyncio") is None
    assert event_loop_factory("uvloop") is uvloop.new_event_loop


def test_clamd_is_reached_over_tcp_or_a_unix_socket() -> None:
    tcp = parse_config(["--clamd", "tcp://127.0.0.1:3310"], {}).clamd_address
    unix = parse_config([], {"ENGINE_GATEWAY_CLAMD": "unix:///run/clamav/clamd.ctl"}).clamd_address
    assert tcp is not None
    assert (tcp.host, tcp.port, tcp.path) == ("127.0.0.1", 3310, None)
    assert unix is not None
    assert (unix.host, unix.port, unix.path) == (None, None, "/run/clamav/clamd.ctl")
    assert parse_config([], {}).clamd_address is None


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_config(["--version"], {})
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"engine-gateway {metrics.version()}"


@pytest.mark.parametrize(
    "argv",
    [
        ["--document-store", "file:///var/lib/documents"],  # no key file
        ["--document-store", "file://relative/dir", "--document-key-file", "k"],
        ["--document-store", "ftp://host/dir", "--document-key-file", "k"],
        ["--document-store-endpoint", "http://127.0.0.1:8333"],  # no store
        ["--offload-above-bytes", "-1"],
        ["--documents-path", "documents"],  # not a path
        ["--documents-path", "/engine-rest/documents"],  # the engine's
        ["--documents-path", "/operaton/documents"],  # a webapp's
        ["--document-link-max-seconds", "0"],
        ["--document-link-max-seconds", str(10 * 365 * 86400 + 1)],  # over ten years
        ["--document-links", "elsewhere"],
    ],
)
def test_a_document_store_configured_wrong_is_refused_at_start(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_config(argv, {})


def test_a_document_store_needs_a_readable_key_file_with_a_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("too short\n")
    argv = ["--document-store", "s3://bucket/prefix", "--document-key-file", str(keys)]
    with pytest.raises(SystemExit):
        parse_config(argv, {})
    keys.write_text("a" * 64 + "\n")
    config = parse_config(argv, {})
    assert config.document_location == store.Location("s3://bucket/prefix")


def test_store_links_live_at_most_seven_days(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--document-store", "s3://b", "--document-key-file", "k"]
    argv += ["--document-links", "store", "--document-link-max-seconds", str(7 * 86400 + 1)]
    with pytest.raises(SystemExit):
        parse_config(argv, {})
    assert "S3 presigns for at most 7 days" in capsys.readouterr().err
