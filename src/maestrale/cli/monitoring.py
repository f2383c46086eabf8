"""`maestrale monitor …`: the production monitor from the shell.

`monitor run` is the service (bus consumer, evaluation loop, outbox relay); `status`, `breaches`
and `decisions` read what it recorded, from the database (MAESTRALE_DATABASE_URL) or, with
--registry URL, from a `maestrale server`; `evaluate` runs one evaluation now. `maestrale policy
check` lives in `maestrale.cli.policy`, `maestrale report` in `maestrale.cli.report`; the helpers
these commands share (store and server access, rows) in `maestrale.cli._monitor_io`.

Each command of this module imports what it needs inside its body, so `maestrale --help` stays fast
and the commands stay independent of one another.

>>> from typer.testing import CliRunner
>>> from maestrale.cli.main import app
>>> CliRunner().invoke(app, ["monitor", "status", "--json"]).exit_code  # doctest: +SKIP
0
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import typer

from maestrale.cli._monitor_io import (
    EPISODE_COLUMNS,
    aliases_of,
    as_datetime,
    episode_rows,
    evaluation_lines,
    load_policies,
    open_store,
    remote_get,
    require_known,
    status_rows,
    trail,
)
from maestrale.cli.models import RegistryUrl, Token
from maestrale.cli.monitor_evaluate import PolicyFiles, evaluate
from maestrale.cli.monitor_import import import_file
from maestrale.cli.output import (
    JsonFlag,
    fmt_metric,
    fmt_time,
    note,
    print_json,
    say,
    table,
)

if TYPE_CHECKING:
    from maestrale.monitoring.monitor import EvaluationResult

monitor_app = typer.Typer(
    help=(
        "The production monitor: performance on late actuals, drift, policy breaches, retraining "
        "and champion/challenger promotion.\n\n"
        "Reads MAESTRALE_DATABASE_URL (embedded: MAESTRALE_HOME); status, breaches and decisions "
        "also work against a `maestrale server` with --registry URL --token TOKEN."
    ),
    no_args_is_help=True,
)


# -- run ------------------------------------------------------------------------------------------
class _OneLineErrors(logging.Filter):
    """Log a model's user-level failure (unregistered, no policy…) once, on one line.

    The loop retries a failing model at every round; its traceback each time would bury the
    evaluations. A new message (another model, another clock) is logged again.
    """

    def __init__(self, remember: int = 1_000) -> None:
        super().__init__()
        self.remember = remember
        self.seen: dict[str, None] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        from maestrale.errors import MaestraleError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, MaestraleError):
            record.msg, record.args = f"{record.getMessage()}: {exc.message}", None
            record.exc_info = record.exc_text = None
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            if message in self.seen:
                return False
            if len(self.seen) >= self.remember:  # bounded: a long-running service must not grow
                self.seen.pop(next(iter(self.seen)))
            self.seen[message] = None
        return True


def run(
    policy: PolicyFiles = None,
    interval: Annotated[
        float,
        typer.Option(
            min=0.1, help="Seconds between evaluation rounds (a model is evaluated when due by its schedule)."
        ),
    ] = 30.0,
    relay: Annotated[
        bool,
        typer.Option(
            "--relay/--no-relay",
            help="Publish the monitor's events (breach, train.requested, promoted) from the outbox; "
            "--no-relay when a `maestrale bus relay` already runs on this database.",
        ),
    ] = True,
) -> None:
    """Run the monitor until Ctrl-C: store logged predictions and actuals, evaluate, act on breaches.

    Consumes `maestrale.prediction.logged` and `maestrale.actual.logged` from the bus
    (MAESTRALE_BROKER_URL), evaluates each model once its data clock moved by its policy's
    schedule, prints a line per evaluation, breach, retraining and promotion, and on exit the
    number of records stored.

    Example: `MAESTRALE_BROKER_URL=amqp://maestrale:secret@rabbitmq/ maestrale monitor run -p pv.yaml`
    """
    import signal

    from maestrale.config import load_settings
    from maestrale.monitoring.service import QUEUE, MonitorService

    policies = load_policies(policy)
    settings = load_settings()
    if settings.broker_url.startswith("memory"):
        note("MAESTRALE_BROKER_URL is memory://: only events published in this process reach the monitor")
    # the monitor's own log lines (retraining, challenger, decisions), not every library's
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("maestrale.monitoring").setLevel(logging.INFO)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_OneLineErrors())
    svc = MonitorService(settings, policies=policies, interval=interval, relay=relay)
    tick = svc.monitor.tick

    def tick_and_print() -> list[EvaluationResult]:
        results = tick()
        for result in results:
            for line in evaluation_lines(result):
                say(line)
        return results

    svc.monitor.tick = tick_and_print  # type: ignore[method-assign]  # the loop calls monitor.tick()
    # SIGTERM (docker stop, Kubernetes) ends like Ctrl-C: the running evaluation finishes first;
    # SIGINT is set too, as a shell starting us in the background leaves it ignored
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    broker = settings.broker_url.split("@")[-1]  # never print credentials
    names = ", ".join(p.name for p in svc.monitor.policies)
    say(
        f"monitoring: queue {settings.bus_namespace}.{QUEUE} on {broker}, evaluating every {interval:g} s "
        f"(policies: {names}); Ctrl-C to stop"
    )
    with svc:
        svc.wait()
    s = svc.stats
    say(
        f"stopped: stored {s.predictions} prediction(s) and {s.actuals} actual(s); "
        f"{s.duplicates} duplicate(s) skipped, {s.rejected} record(s) rejected"
    )


# -- status ---------------------------------------------------------------------------------------
def status(
    name: Annotated[str | None, typer.Argument(help="One model; every monitored model if omitted.")] = None,
    registry: RegistryUrl = None,
    token: Token = None,
    as_json: JsonFlag = False,
) -> None:
    """Where each monitored model stands: serving version, clock, nMAE over 7D, breaches, challenger.

    `as of` is the monitor's data clock (the latest target time with an actual) at the last
    evaluation; `× training` compares production nMAE with the version's holdout nMAE; `alerts`
    are the open alert episodes (repeated breaches of one condition are one episode) and drift's
    status ("no reference for December"); `challenger` shows its out-of-sample pairs so far
    against the policy's min_samples, or the outcome of the latest retraining.

    Example: `maestrale monitor status pv-nrel-50 --json`
    """
    if registry:
        items = remote_get(registry, token, "/models", name=name)
    else:
        store = open_store()
        if name is not None:
            require_known(store, name)
        items = store.overview(name, aliases=aliases_of())
    if as_json:
        print_json(items)
        return
    if not items:
        note("no predictions logged yet: send them with maestrale.log_predictions or the REST API")
        return
    columns = ["model", "serving", "as of", "nMAE 7D", "× training", "alerts", "challenger"]
    table(None, columns, status_rows(items), no_wrap=["model", "as of"])


# -- audit trail ----------------------------------------------------------------------------------
TrailLimit = Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000, help="The newest N entries.")]


def breaches(
    name: Annotated[str, typer.Argument(help="The model.")],
    limit: TrailLimit = 100,
    registry: RegistryUrl = None,
    token: Token = None,
    as_json: JsonFlag = False,
) -> None:
    """The breaches recorded for a model, oldest first: condition, value vs threshold, pairs, actions.

    Example: `maestrale monitor breaches pv-nrel-50 -n 20`
    """
    items = trail("breaches", name, registry, token, limit)
    if as_json:
        print_json(items)
        return
    if not items:
        say(f"no breaches recorded for {name}")
        return
    rows = [
        [
            fmt_time(as_datetime(b["as_of"])),
            f"v{b['version']}",
            b["condition"],
            b["metric"],
            fmt_metric(b["value"]),
            fmt_metric(b["threshold"]),
            b["window"],
            b["n"],
            " ".join(f"{k}={v}" for k, v in sorted((b.get("actions") or {}).items())),
        ]
        for b in items
    ]
    table(
        f"breaches of {name}",
        ["as of", "version", "condition", "metric", "value", "threshold", "window", "n", "actions"],
        rows,
        no_wrap=["as of"],
    )


def episodes(
    name: Annotated[str, typer.Argument(help="The model.")],
    limit: TrailLimit = 100,
    as_json: JsonFlag = False,
) -> None:
    """Alert episodes of a model, oldest first: repeated breaches of one condition as one alert.

    An episode starts at the first breach of a condition, ends once the condition stayed clear for
    its window, and keeps the peak (the worst value) and the number of breaches it grouped.

    Example: `maestrale monitor episodes pv-nrel-50`
    """
    store = open_store()
    require_known(store, name)
    items = store.episodes(name, limit=limit)
    if as_json:
        print_json(items)
        return
    if not items:
        say(f"no alert episodes recorded for {name}")
        return
    table(f"alert episodes of {name}", EPISODE_COLUMNS, episode_rows(items), no_wrap=["start", "end"])


def decisions(
    name: Annotated[str, typer.Argument(help="The model.")],
    limit: TrailLimit = 100,
    registry: RegistryUrl = None,
    token: Token = None,
    as_json: JsonFlag = False,
) -> None:
    """Champion/challenger decisions of a model, oldest first: who faced whom, outcome, why, on n pairs.

    Example: `maestrale monitor decisions pv-nrel-50 --json`
    """
    items = trail("decisions", name, registry, token, limit)
    if as_json:
        print_json(items)
        return
    if not items:
        say(f"no champion/challenger decisions recorded for {name}")
        return
    rows = [
        [
            fmt_time(as_datetime(d["as_of"])),
            f"v{d['champion_version'] or '-'} → v{d['challenger_version']}",
            d["outcome"],
            d["reason"],
            d["n"],
        ]
        for d in items
    ]
    table(
        f"decisions of {name}",
        ["date", "champion → challenger", "outcome", "reason", "n"],
        rows,
        no_wrap=["date", "champion → challenger"],
    )


def register(app: typer.Typer) -> None:
    """Attach `maestrale monitor …` to the root app."""
    monitor_app.command("run")(run)
    monitor_app.command("status")(status)
    monitor_app.command("breaches")(breaches)
    monitor_app.command("decisions")(decisions)
    monitor_app.command("evaluate")(evaluate)
    monitor_app.command("episodes")(episodes)
    monitor_app.command("import")(import_file)
    app.add_typer(monitor_app, name="monitor")
