"""`maestrale monitor evaluate NAME`: one evaluation now, or every scheduled step of a past range.

>>> from typer.testing import CliRunner
>>> from maestrale.cli.main import app
>>> CliRunner().invoke(app, ["monitor", "evaluate", "pv-nrel-50", "--from", "2012-06-01T00:00Z",
...                          "--to", "2012-08-01T00:00Z"]).exit_code  # doctest: +SKIP
0
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from maestrale.cli._monitor_io import evaluation_json, load_policies, open_store, require_known
from maestrale.cli.output import JsonFlag, fields, fmt_metric, fmt_time, print_json, say, table, usage_error

if TYPE_CHECKING:
    from maestrale.monitoring.monitor import EvaluationResult

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


def parse_time_option(value: str, option: str) -> datetime:
    """An ISO 8601 time with a zone, or a usage error naming the option and the fix.

    >>> parse_time_option("2012-06-08T00:00Z", "--as-of").isoformat()
    '2012-06-08T00:00:00+00:00'
    """
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise usage_error(f"{option} {value!r} is not an ISO 8601 time, e.g. 2012-06-08T00:00Z") from None
    if when.tzinfo is None:
        raise usage_error(f"{option} {value!r} has no time zone: write e.g. 2012-06-08T00:00Z or +02:00")
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
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="ISO",
            help="Backfill: evaluate every step of the policy's schedule from this time ... (with --to).",
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--to", metavar="ISO", help="... to this one (default: the monitor's clock)."),
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
    """Evaluate one model: performance over each policy window, drift, breaches; all recorded.

    The evaluation is stored like the service's (series, breaches, episodes and their events, the
    model's clock), so `status`, `report`, `/metrics` and the service's schedule see it. With
    --from/--to, data logged at once (an import) gets one evaluation per scheduled step, as if the
    monitor had run all along, and a challenger is judged at each step.

    Example: `maestrale monitor evaluate pv-nrel-50 --from 2012-06-01T00:00Z --to 2012-08-01T00:00Z`
    """
    from maestrale.config import load_settings
    from maestrale.errors import NotFound
    from maestrale.monitoring.monitor import Monitor
    from maestrale.registry.client import Registry

    if as_of is not None and (start is not None or end is not None):
        raise usage_error("give either --as-of (one evaluation) or --from/--to (every step of a range)")
    if end is not None and start is None:
        raise usage_error("--to needs --from: the range to backfill starts there")
    when = parse_time_option(as_of, "--as-of") if as_of is not None else None
    first = parse_time_option(start, "--from") if start is not None else None
    last = parse_time_option(end, "--to") if end is not None else None
    if first is not None and last is not None and last < first:
        raise usage_error(f"--to {end} is before --from {start}")
    policies = load_policies(policy)
    store = open_store()
    require_known(store, name)
    clock = store.data_time(name)
    if clock is None:
        raise NotFound(f"no prediction of {name!r} has an actual yet: nothing to evaluate")
    settings = load_settings()
    # --retrain: a breach writes train.requested to the outbox, published by the next relay that runs
    monitor = Monitor(store, Registry(settings=settings, actor="monitor"), retrain, policies)
    if first is not None:
        try:
            results = monitor.backfill(name, first, last or clock)
        except ValueError as exc:
            raise usage_error(str(exc)) from None
        _print_backfill(name, results, as_json)
        return
    result = monitor.evaluate(name, when or clock)
    if as_json:
        print_json(evaluation_json(result))
        return
    _print_one(name, result)


def _print_backfill(name: str, results: list[EvaluationResult], as_json: bool) -> None:
    if as_json:
        print_json([evaluation_json(r) for r in results])
        return
    if not results:
        say(f"{name}: no step of the range has data (the monitor's clock is before --from)")
        return
    opened = [(r.as_of, c) for r in results for c, (_, new) in r.episodes.items() if new]
    breaches = sum(len(r.breaches) for r in results)
    span = f"from {fmt_time(results[0].as_of)} to {fmt_time(results[-1].as_of)}"
    say(f"{name}: {len(results)} evaluations {span}; {breaches} breaches in {len(opened)} new episodes")
    for at, condition in opened:
        say(f"  episode of {condition} opened at {fmt_time(at)}")
    for r in results:
        if r.decision is not None and r.decision.outcome is not None:
            say(f"  {fmt_time(r.as_of)} challenger v{r.challenger} {r.decision.outcome}: {r.decision.reason}")
        if r.retrain_request:
            say(f"  {fmt_time(r.as_of)} retraining requested: {r.retrain_request}")


def _print_one(name: str, result: EvaluationResult) -> None:
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
        episode, opened = result.episodes.get(b.condition, (None, False))
        where = f" (episode {episode}, {'new' if opened else 'continues'})" if episode is not None else ""
        say(f"breach {b.condition}: {b.description}{where}")
    if result.decision is not None:
        outcome = result.decision.outcome or "undecided"
        say(f"challenger {result.challenger}: {outcome}: {result.decision.reason}")
