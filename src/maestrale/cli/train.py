"""`maestrale train SPEC.yaml [--local | --wait]` and `maestrale reproduce NAME:VERSION`.

`train` validates the spec and expands its fleet, then hands the members to a runner: `--local`
trains them in this process; otherwise they go to the training service as `train.requested`
(`maestrale.cli.service.train_via_bus`). `maestrale train list | status | cancel` live in
`maestrale.cli.train_requests`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from maestrale.cli.models import RegistryUrl, Token, open_registry
from maestrale.cli.output import JsonFlag, err_console, error, note, print_json, say, table, usage_error

if TYPE_CHECKING:
    from maestrale.registry.client import Registry
    from maestrale.training.spec import TrainingSpec
    from maestrale.training.trainer import TrainingResult


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}g}"


def _train_local(
    members: list[TrainingSpec],
    reg: Registry,
    reason: str | None,
    request_id: str | None,
    quiet: bool,
    reuse: bool = False,
) -> tuple[list[TrainingResult], list[tuple[str, str]]]:
    """Train each member in turn under one progress bar; a failing member does not stop the others."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from maestrale.errors import MaestraleError
    from maestrale.training.evaluate import total_steps
    from maestrale.training.trainer import data_key, load_for, train

    results: list[TrainingResult] = []
    failures: list[tuple[str, str]] = []
    cache: dict[str, Any] = {}  # members reading the same source read it once
    keys = [data_key(m) for m in members]
    totals = [total_steps(m) for m in members]
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("models {task.fields[models]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console(), transient=True, disable=quiet) as bar:
        task = bar.add_task("training", total=sum(totals), models=f"0/{len(members)}")
        base = 0
        for i, (member, steps) in enumerate(zip(members, totals, strict=True)):

            def step(stage: str, done: int, total: int, name: str = member.name, at: int = base) -> None:
                bar.update(task, completed=at + done, description=f"{name}: {stage}")

            try:
                data = load_for(member, cache)
                results.append(
                    train(member, reg, reason=reason, request_id=request_id, progress=step, data=data,
                          reuse=reuse)
                )  # fmt: skip
            except MaestraleError as exc:
                failures.append((member.name, exc.message))
            if keys[i] not in keys[i + 1 :]:
                cache.pop(keys[i], None)  # no later member reads it: free the memory
            base += steps
            bar.update(task, completed=base, models=f"{i + 1}/{len(members)}")
    return results, failures


def _dispatch(
    members: list[TrainingSpec],
    *,
    local: bool,
    registry: str | None,
    token: str | None,
    reason: str | None,
    request_id: str | None,
    quiet: bool,
    reuse: bool = False,
) -> tuple[list[TrainingResult], list[tuple[str, str]]]:
    """Run the members where asked. The bus mode (publish train.requested, --wait) slots in here."""
    if not local:
        raise usage_error(
            "training through the bus (the training workers) is not available yet: pass --local to "
            "train in this process"
        )
    return _train_local(members, open_registry(registry, token), reason, request_id, quiet, reuse)


def train(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC.yaml", help="Training spec (YAML).")],
    local: Annotated[
        bool, typer.Option("--local", help="Train in this process (embedded or --registry).")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Through the bus: wait for the workers and show the results.")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="With --wait: give up after this many seconds.")
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Train only this fleet member (model name); repeatable."),
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (recorded on each version).")] = None,
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="Recorded as the request_id tag.")
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Train even when a version already has this spec, data and code (default: skip)."
        ),
    ] = False,
    registry: RegistryUrl = None,
    token: Token = None,
    as_json: JsonFlag = False,
) -> None:
    """Train the model (or every fleet member) a spec describes and register each version.

    A member whose spec, data (fingerprint) and code (git commit, packages) are those of a
    registered version is not trained again: the command says which version has them. --force
    trains anyway.

    Without --local the spec goes to the training service: one `train.requested` per fleet member,
    trained by `maestrale worker` processes (embedded mode starts a worker in this process);
    --wait shows a progress bar across the fleet and a results table.

    Example: `maestrale train examples/specs/pv-fleet.yaml --wait`
    """
    from maestrale.training.fleet import expand_fleet
    from maestrale.training.specio import load_spec_file

    members = expand_fleet(load_spec_file(spec_path))
    if only:
        unknown = sorted(set(only) - {m.name for m in members})
        if unknown:
            raise usage_error(
                f"--only {unknown[0]!r} is not a member; members: {', '.join(m.name for m in members)}"
            )
        members = [m for m in members if m.name in only]
    if not local:
        from maestrale.cli.service import train_via_bus

        train_via_bus(members, reason=reason, wait=wait, as_json=as_json, timeout=timeout, reuse=not force)
        return
    results, failures = _dispatch(
        members,
        local=local,
        registry=registry,
        token=token,
        reason=reason,
        request_id=request_id,
        quiet=as_json,
        reuse=not force,
    )
    if as_json:
        print_json(
            {
                "results": [r.model_dump(mode="json") | {"ref": r.ref} for r in results],
                "failures": [{"name": n, "error": e} for n, e in failures],
            }
        )
    else:
        rows = [
            [
                r.name,
                f"{r.version} (unchanged)" if r.reused else r.version,
                _fmt(r.metrics.get("nmae")),
                _fmt(r.metrics.get("skill"), 3),
                _fmt(r.backtest_mean.get("nmae")),
                f"{r.duration_s:.2f} s",
            ]
            for r in results
        ]
        table(
            None, ["model", "version", "nMAE", "skill", "backtest nMAE", "duration"], rows, no_wrap=["model"]
        )
    for r in results if not as_json else []:
        if r.reused:
            note(f"{r.name}: not trained, {r.ref} has the same spec, data and code (--force trains anyway)")
        elif r.reuse_note:  # a version had this spec, yet something else changed: say what
            note(f"{r.name}: trained, as {r.reuse_note}")
    for name, message in failures:
        error(f"{name}: {message}")
    if failures:
        raise typer.Exit(1)


def reproduce(
    ref: Annotated[str, typer.Argument(metavar="NAME:VERSION", help="The version to retrain.")],
    tolerance: Annotated[
        float, typer.Option("--tolerance", min=0, help="Largest |difference| still called identical.")
    ] = 0.0,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 unless the reproduction is identical.")
    ] = False,
    registry: RegistryUrl = None,
    token: Token = None,
    as_json: JsonFlag = False,
) -> None:
    """Retrain a registered version from its recorded spec and data (nothing is registered); compare metrics.

    Example: `maestrale reproduce pv-nrel-50:3 --check`
    """
    from maestrale.training.reproduction import reproduce as run

    report = run(open_registry(registry, token), ref, tolerance=tolerance)
    if as_json:
        print_json(report)
    else:
        rows = [
            [
                m.metric,
                _fmt(m.recorded, 8),
                _fmt(m.reproduced, 8),
                "0" if m.difference == 0 else _fmt(m.difference, 3),
            ]
            for m in report.metrics
        ]
        table(f"reproduce {report.ref}", ["metric", "recorded", "reproduced", "difference"], rows)
        say(report.note)
        verdict = (
            "identical" if report.identical else f"max |difference| {_fmt(report.max_abs_difference, 3)}"
        )
        say(f"{report.ref}: {verdict} ({report.duration_s:.1f} s)")
    if report.data_changed:
        note("the data changed since training: see the note above")
    if check and not report.identical:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Attach `train` (train from a spec; `list`, `status`, `cancel` requests) and `reproduce`."""
    from maestrale.cli import train_requests

    train_app = typer.Typer(
        cls=train_requests.TrainGroup,
        no_args_is_help=True,
        help=(
            "Train from a spec, and follow or cancel training requests.\n\n"
            "`maestrale train SPEC.yaml [--local | --wait]` is short for `maestrale train run SPEC.yaml …`."
        ),
    )
    train_app.command("run")(train)
    train_requests.register(train_app)
    app.add_typer(train_app, name="train")
    app.command("reproduce")(reproduce)
