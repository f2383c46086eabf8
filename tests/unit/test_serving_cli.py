"""`maestrale serve`: registered on the root command, with the documented options and plain errors."""

from __future__ import annotations

from typer.testing import CliRunner

from maestrale.cli.main import app


def test_serve_is_registered_with_its_options():
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for option in ("--host", "--port", "--no-log", "--reload-poll", "--workers", "NAME@ALIAS..."):
        assert option in result.output


def test_a_bad_reference_is_a_one_line_error(tmp_path):
    env = {"MAESTRALE_HOME": str(tmp_path), "MAESTRALE_BROKER_URL": "memory://"}
    result = CliRunner().invoke(app, ["serve", "Not A Name@champion"], env=env)
    assert result.exit_code == 1
    assert "error: invalid model name 'Not A Name'" in result.output


def test_a_worker_count_out_of_range_names_the_range(tmp_path):
    from maestrale.serving.workers import usable_cpus

    env = {"MAESTRALE_HOME": str(tmp_path), "MAESTRALE_BROKER_URL": "memory://"}
    most = 4 * usable_cpus()
    for n, message in (
        (0, f"--workers 0 is not a worker count: use --workers 1..{most}"),
        (
            most + 1,
            f"--workers {most + 1} is more than 4 per CPU ({usable_cpus()} CPUs here: at most {most})",
        ),
    ):
        result = CliRunner().invoke(app, ["serve", "pv@champion", "--workers", str(n)], env=env)
        assert result.exit_code == 1, result.output
        assert message in " ".join(result.output.split()), result.output


def test_worker_env_hands_the_workers_every_decision():
    from maestrale.serving.workers import worker_env

    env = worker_env(
        {"MAESTRALE_SERVE_GRPC_PORT": "9"}, refs=["a@champion", "b:3"], host="0.0.0.0", port=8000,
        log=False, reload_poll=0, trust_types=["m.C"], auth=True, token_file="/t", log_level="warning",
    )  # fmt: skip
    # a gRPC port inherited from the caller's environment is not passed on
    assert env == {
        "MAESTRALE_SERVE_REFS": "a@champion b:3",
        "MAESTRALE_SERVE_LOG": "0",
        "MAESTRALE_SERVE_RELOAD_POLL": "0",
        "MAESTRALE_SERVE_TRUST": "m.C",
        "MAESTRALE_SERVE_HOST": "0.0.0.0",
        "MAESTRALE_SERVE_PORT": "8000",
        "MAESTRALE_SERVE_LOG_LEVEL": "warning",
        "MAESTRALE_SERVE_AUTH": "on",
        "MAESTRALE_SERVE_TOKEN_FILE": "/t",
    }


def test_a_port_in_use_is_refused_before_any_worker_starts():
    import socket

    import pytest

    from maestrale.errors import ConfigError
    from maestrale.serving.workers import ensure_free

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"cannot listen on 127.0.0.1:{port} .*choose another --port"):
            ensure_free("127.0.0.1", port, "--port")


def test_a_port_left_in_time_wait_by_a_stopped_server_is_free():
    """A restarted server finds its port free though the last one's connections linger in TIME_WAIT."""
    import socket
    import time

    from maestrale.serving.workers import ensure_free

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server side closes first: its end waits in TIME_WAIT
    time.sleep(0.1)
    client.close()
    server.close()
    with socket.socket() as plain:  # what a probe without SO_REUSEADDR would meet
        try:
            plain.bind(("127.0.0.1", port))
        except OSError:
            pass
        else:
            return  # no TIME_WAIT left on this kernel: nothing to show
    ensure_free("127.0.0.1", port, "--port")
