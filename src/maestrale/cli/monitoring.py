"""`maestrale monitor …`, `maestrale policy check` and `maestrale report`: the monitor from the shell.

`monitor run` is the service (bus consumer, evaluation loop, outbox relay); `status`, `breaches`
and `decisions` read what it recorded, from the database (MAESTRALE_DATABASE_URL) or, with
--registry URL, from a `maestrale server`; `evaluate` runs one evaluation now; `policy check`
validates a policy file before the monitor uses it; `report NAME` writes the monitoring report of
a model as one self-contained HTML file.

Each command of this module imports what it needs inside its body, so `maestrale --help` stays fast
and the commands stay independent of one another.

>>> from typer.testing import CliRunner
>>> from maestrale.cli.main import app
>>> CliRunner().invoke(app, ["policy", "check", "policy.yaml"]).exit_code  # doctest: +SKIP
0
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from maestrale.cli.models import RegistryUrl, Token
from maestrale.cli.output import (
    JsonFlag,
    error,
    fields,
    fmt_metric,
    fmt_time,
    note,
    print_json,
    say,
    table,
    usage_error,
)

if TYPE_CHECKING:
    from maestrale.monitoring.monitor import EvaluationResult
    from maestrale.monitoring.policy import Policy
    from maestrale.monitoring.store import MonitorStore

monitor_app = typer.Typer(
    help=(
        "The production monitor: performance on late actuals, drift, policy breaches, retraining "
        "and champion/challenger promotion.\n\n"
        "Reads MAESTRALE_DATABASE_URL (embedded: MAESTRALE_HOME); status, breaches and decisions "
        "also work against a `maestrale server` with --registry URL --token TOKEN."
    ),
    no_args_is_help=True,
)
policy_app = typer.Typer(
    help="Monitoring policies: when a model is out of bounds and what the monitor does about it.",
    no_args_is_help=True,
)

PolicyFiles = Annotated[
    list[Path] | None,
    typer.Option(
        "--policy",
        "-p",
        metavar="FILE",
        help="Policy YAML; repeatable, the first whose `models` match a model applies to it "
        "(default: the policy shipped with Maestrale).",
    ),
]
#: The window and metric the status table shows (the default policy's accuracy condition).
STATUS_WINDOW, STATUS_METRIC = "7D", "nmae"


# -- shared helpers -------------------------------------------------------------------------------
def _store() -> MonitorStore:
    from maestrale.config import load_settings
    from maestrale.monitoring.store import MonitorStore

    settings = load_settings()
    assert settings.database_url  # filled by the Settings defaults
    return MonitorStore(settings.database_url, auto_upgrade=settings.auto_upgrade)


def _aliases_of() -> Any:
    """`name → {alias: version}` from the embedded registry metadata (no artifact store needed)."""
    from maestrale.config import load_settings
    from maestrale.errors import NotFound
    from maestrale.registry.store import SqlStore

    settings = load_settings()
    assert settings.database_url
    meta = SqlStore(settings.database_url, settings.auto_upgrade)

    def aliases(name: str) -> dict[str, int]:
        try:
            return dict(meta.get_model(name).aliases)
        except NotFound:  # monitored but not registered here
            return {}

    return aliases


def _remote(url: str, token: str | None, path: str, **params: Any) -> Any:
    """GET a monitoring endpoint of a `maestrale server`, server errors raised as Maestrale errors."""
    from maestrale.registry.remote import RemoteSession

    session = RemoteSession(url, token=token)
    query = {k: v for k, v in params.items() if v is not None}
    return session.json("GET", f"/api/v1/monitoring{path}", params=query)


def _known(store: MonitorStore, name: str) -> None:
    from maestrale.errors import NotFound
    from maestrale.refs import validate_name

    validate_name(name)
    if not store.known(name):
        raise NotFound(
            f"nothing monitored for {name!r}: no predictions logged and no evaluations stored "
            "(see `maestrale monitor status` for the monitored models)"
        )


def _dt(value: datetime | str | None) -> datetime | None:
    """Datetimes as the store returns them, or ISO strings as the REST API does."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def _policies(files: list[Path] | None) -> list[Policy] | None:
    from maestrale.monitoring.policy import load_policy

    return [load_policy(Path(f)) for f in files] if files else None


def _headline(perf: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """The window to show (7D, else the longest evaluated) and its figures."""
    if not perf:
        return None, None
    if STATUS_WINDOW in perf:
        return STATUS_WINDOW, perf[STATUS_WINDOW]
    from maestrale.monitoring.performance import parse_window

    window = max(perf, key=parse_window)
    return window, perf[window]


# -- run ------------------------------------------------------------------------------------------
def _evaluation_lines(r: EvaluationResult) -> list[str]:
    """What one evaluation found and did, as the lines `monitor run` prints."""
    figures = []
    for window, rep in r.performance.items():
        metric = STATUS_METRIC if STATUS_METRIC in rep.overall else "mae"
        value = rep.overall.get(metric)
        ratio = rep.ratios.get(metric)
        times = f", {ratio:.2f}× training" if ratio is not None else ""
        figures.append(f"{metric} {window} {fmt_metric(value)} (n={rep.n}{times})")
    lines = [f"{r.model}:{r.version} at {fmt_time(r.as_of)}: " + ("; ".join(figures) or "no performance")]
    for b in r.breaches:
        acted = ", ".join(f"{k}: {v}" for k, v in b.actions.items() if v is not False)
        lines.append(f"  breach {b.condition}: {b.description}" + (f" [{acted}]" if acted else ""))
    if r.retrain_request:
        lines.append(f"  retraining requested: {r.retrain_request}")
    if r.decision is not None and r.challenger is not None:
        outcome = r.decision.outcome or "undecided"
        lines.append(f"  challenger {r.model}:{r.challenger} {outcome}: {r.decision.reason}")
    if r.promoted is not None:
        lines.append(f"  promoted {r.model}:{r.promoted} to champion")
    return lines


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

    policies = _policies(policy)
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
            for line in _evaluation_lines(result):
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
def _status_rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for item in items:
        window, perf = _headline(item.get("performance") or {})
        figure = ratio = "-"
        if perf is not None:
            value = (perf.get("overall") or {}).get(STATUS_METRIC)
            where = "" if window == STATUS_WINDOW else f", {window}"
            figure = f"{fmt_metric(value)} (n={perf['n']}{where})"
            r = (perf.get("ratios") or {}).get(STATUS_METRIC)
            ratio = "-" if r is None else f"{r:.2f}×"
        challenger = item.get("challenger")
        since = _dt(item.get("challenger_since"))
        pending = (
            "-" if challenger is None else f"v{challenger}" + (f" since {fmt_time(since)}" if since else "")
        )
        rows.append(
            [
                item["model"],
                item.get("serving_version") or "-",
                fmt_time(_dt(item.get("as_of"))),
                figure,
                ratio,
                f"{item['open_breaches']} open / {item['breaches_total']}",
                pending,
            ]
        )
    return rows


def status(
    name: Annotated[str | None, typer.Argument(help="One model; every monitored model if omitted.")] = None,
    registry: RegistryUrl = None,
    token: Token = None,
    as_json: JsonFlag = False,
) -> None:
    """Where each monitored model stands: serving version, clock, nMAE over 7D, breaches, challenger.

    `as of` is the monitor's data clock (the latest target time with an actual) at the last
    evaluation; `× training` compares production nMAE with the version's holdout nMAE; `open`
    breaches are the conditions that fired at the latest evaluation.

    Example: `maestrale monitor status pv-nrel-50 --json`
    """
    if registry:
        items = _remote(registry, token, "/models", name=name)
    else:
        store = _store()
        if name is not None:
            _known(store, name)
        items = store.overview(name, aliases=_aliases_of())
    if as_json:
        print_json(items)
        return
    if not items:
        note("no predictions logged yet: send them with maestrale.log_predictions or the REST API")
        return
    columns = ["model", "serving", "as of", "nMAE 7D", "× training", "breaches", "challenger"]
    table(None, columns, _status_rows(items), no_wrap=["model", "as of"])


# -- audit trail ----------------------------------------------------------------------------------
def _trail(kind: str, name: str, registry: str | None, token: str | None, limit: int) -> list[dict[str, Any]]:
    if registry:
        return _remote(registry, token, f"/models/{name}/{kind}", limit=limit)
    store = _store()
    _known(store, name)
    return store.audit_trail(kind, name, limit)


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
    items = _trail("breaches", name, registry, token, limit)
    if as_json:
        print_json(items)
        return
    if not items:
        say(f"no breaches recorded for {name}")
        return
    rows = [
        [
            fmt_time(_dt(b["as_of"])),
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
    items = _trail("decisions", name, registry, token, limit)
    if as_json:
        print_json(items)
        return
    if not items:
        say(f"no champion/challenger decisions recorded for {name}")
        return
    rows = [
        [
            fmt_time(_dt(d["as_of"])),
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


# -- evaluate -------------------------------------------------------------------------------------
def _evaluation_json(r: EvaluationResult) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "model": r.model,
        "version": r.version,
        "as_of": r.as_of,
        "performance": {w: rep.as_dict() for w, rep in r.performance.items()},
        "drift": r.drift,
        "breaches": [asdict(b) for b in r.breaches],
        "retrain_request": r.retrain_request,
        "challenger": r.challenger,
        "decision": None if r.decision is None else asdict(r.decision),
        "promoted": r.promoted,
    }


def _parse_as_of(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise usage_error(f"--as-of {value!r} is not an ISO 8601 time, e.g. 2012-06-08T00:00Z") from None
    if when.tzinfo is None:
        raise usage_error(f"--as-of {value!r} has no time zone: write e.g. 2012-06-08T00:00Z or +02:00")
    return when


def evaluate(
    name: Annotated[str, typer.Argument(help="The model.")],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            metavar="ISO",
            help="End of the windows, in data time (default: the monitor's clock, the latest target "
            "time with an actual).",
        ),
    ] = None,
    policy: PolicyFiles = None,
    retrain: Annotated[
        bool,
        typer.Option(
            "--retrain/--no-retrain",
            help="Let a breach submit a retraining as the service would; by default it is only recorded.",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Evaluate one model now: performance over each policy window, drift, breaches; all recorded.

    The evaluation is stored like the service's (series, breaches and their events, the model's
    clock), so `status`, `/metrics` and the service's schedule see it.

    Example: `maestrale monitor evaluate pv-nrel-50 --as-of 2012-06-08T00:00Z --policy pv.yaml`
    """
    from maestrale.config import load_settings
    from maestrale.errors import NotFound
    from maestrale.monitoring.monitor import Monitor
    from maestrale.registry.client import Registry

    when = _parse_as_of(as_of) if as_of is not None else None
    policies = _policies(policy)
    store = _store()
    _known(store, name)
    if when is None:
        when = store.data_time(name)
        if when is None:
            raise NotFound(f"no prediction of {name!r} has an actual yet: nothing to evaluate")
    settings = load_settings()
    requests = None
    if retrain:
        from maestrale.training.requests import TrainingRequests

        assert settings.database_url
        requests = TrainingRequests(settings.database_url, settings.auto_upgrade)
    monitor = Monitor(store, Registry(settings=settings, actor="monitor"), requests, policies)
    result = monitor.evaluate(name, when)
    if as_json:
        print_json(_evaluation_json(result))
        return
    say(f"{name}:{result.version} as of {fmt_time(result.as_of)}")
    fields(
        None,
        [
            ("breaches", len(result.breaches)),
            ("retraining", result.retrain_request),
            ("challenger", result.challenger),
            ("promoted", result.promoted),
        ],
    )
    perf_rows = [
        [
            window,
            rep.n,
            *(fmt_metric(rep.overall.get(m)) for m in ("nmae", "mae", "rmse", "nbias", "skill")),
            fmt_metric(rep.ratios.get("nmae")),
        ]
        for window, rep in result.performance.items()
    ]
    if perf_rows:
        table(
            "performance",
            ["window", "n", "nMAE", "MAE", "RMSE", "nbias", "skill", "nMAE × training"],
            perf_rows,
        )
    for window, d in result.drift.items():
        stats = d.get("stats") or {}
        worst = sorted(((v.get("psi") or 0.0, f) for f, v in stats.items()), reverse=True)[:5]
        shown = ", ".join(f"{f} {psi:.3g}" for psi, f in worst) or d.get("note", "-")
        say(f"drift {window} (n={d.get('n', 0)}): PSI {shown}")
    for b in result.breaches:
        say(f"breach {b.condition}: {b.description}")
    if result.decision is not None:
        outcome = result.decision.outcome or "undecided"
        say(f"challenger {result.challenger}: {outcome}: {result.decision.reason}")


# -- policy check ---------------------------------------------------------------------------------
def check(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The policy YAML.")],
    as_json: JsonFlag = False,
) -> None:
    """Validate a policy file: print it normalised (defaults filled in) or every problem (exit 2).

    Each problem names its field, e.g. `conditions.0: unknown metric 'nmea': use one of …`.

    Example: `maestrale policy check policies/pv.yaml`
    """
    import yaml

    from maestrale.monitoring.policy import PolicyError, load_policy

    try:
        policy = load_policy(Path(file))
    except PolicyError as exc:
        error(exc.message)
        raise typer.Exit(2) from None
    normalised = policy.model_dump(mode="json")
    if as_json:
        print_json(normalised)
        return
    say(f"{file}: policy {policy.name!r} is valid; it applies to {', '.join(policy.models)}")
    for c in policy.conditions:
        say(f"  {c.name}: {c.describe()} → {', '.join(policy.actions_of(c))}")
    say("")
    # unset options (null) are left out of the human form; --json keeps every field
    shown = policy.model_dump(mode="json", exclude_none=True)
    say(yaml.safe_dump(shown, sort_keys=False, allow_unicode=True, width=100).rstrip())


# -- report ---------------------------------------------------------------------------------------
def report(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Model name, e.g. pv-nrel-50.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "--output", "-o", help="HTML file to write (default: report-NAME.html in this folder)."
        ),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option("--window", help="Only evaluations over this window, e.g. 7D (default: every window)."),
    ] = None,
    title: Annotated[str | None, typer.Option("--title", help="Title of the report.")] = None,
    registry: RegistryUrl = None,
    token: Token = None,
    json_output: JsonFlag = False,
) -> None:
    """Write a self-contained HTML monitoring report: performance, forecast vs actual, drift, events.

    The monitor's records are read from MAESTRALE_DATABASE_URL (also when the registry is remote);
    versions and alias moves from the registry. A model without data still gets a report that says
    what is missing. Plots need matplotlib: pip install 'maestrale\\[plot]'.

    Example: maestrale report pv-nrel-50 --window 7D --out pv.html
    """
    import os

    from maestrale.cli.models import open_registry
    from maestrale.config import load_settings
    from maestrale.monitoring.performance import parse_window
    from maestrale.monitoring.report import collect, render, require_matplotlib
    from maestrale.monitoring.store import MonitorStore
    from maestrale.refs import validate_name

    validate_name(name)
    require_matplotlib()  # fail before reading anything, with the install hint
    if window is not None:
        try:
            parse_window(window)
        except ValueError as exc:
            raise usage_error(str(exc)) from None
    reg = open_registry(registry, token)
    settings = load_settings()
    if reg.is_remote and not os.environ.get("MAESTRALE_DATABASE_URL"):
        # the server holds the registry, but the monitor's tables are read straight from SQL: without
        # the URL this is the local default database, most likely not the one the monitor writes to
        note(
            f"reading the monitor's records from {settings.database_url}: set MAESTRALE_DATABASE_URL "
            "to the database `maestrale monitor` writes to"
        )
    assert settings.database_url  # filled by the Settings defaults
    store = MonitorStore(settings.database_url, auto_upgrade=settings.auto_upgrade)
    data = collect(store, reg, name, window=window)
    if not data.registered and not data.logged:  # most likely a typo: say so, still write the report
        note(f"{name!r} is neither registered nor monitored here: the report says there is no data")
    text = render(data, title=title)
    path = out if out is not None else Path(f"report-{name}.html")
    path.write_text(text, encoding="utf-8")
    plots = text.count('<img src="data:image/png;base64,')
    if json_output:
        print_json({"path": str(path), "plots": plots, "summary": data.summary()})
        return
    say(str(path))
    say(f"{data.summary()}; {plots} plots")


def register(app: typer.Typer) -> None:
    """Attach `maestrale monitor …` and `maestrale policy …` to the root app."""
    monitor_app.command("run")(run)
    monitor_app.command("status")(status)
    monitor_app.command("breaches")(breaches)
    monitor_app.command("decisions")(decisions)
    monitor_app.command("evaluate")(evaluate)
    policy_app.command("check")(check)
    app.add_typer(monitor_app, name="monitor")
    app.add_typer(policy_app, name="policy")
