"""`maestrale train list | status ID | cancel ID`: the training requests, and whether a worker takes them.

They read the `trainings` table of MAESTRALE_DATABASE_URL (embedded: MAESTRALE_HOME), or a
`maestrale server` with --registry URL --token TOKEN (`/api/v1/trainings`). An ID is a request id
or a fleet id, or the first 8 characters that `list` shows.

>>> from typer.testing import CliRunner  # doctest: +SKIP
>>> CliRunner().invoke(app, ["train", "list", "--status", "queued"]).stdout  # doctest: +SKIP
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from maestrale.cli.models import RegistryUrl, Token
from maestrale.cli.output import JsonFlag, fields, fmt_metric, fmt_time, note, print_json, say, table

if TYPE_CHECKING:
    # Typer vendors click (typer._click): TyperGroup's methods take that Context, typer.Context's base
    from typer._click import Context as ClickContext

    from maestrale.bus.transport import Transport
    from maestrale.config import Settings
    from maestrale.training.requests import TrainingRecord

API = "/api/v1/trainings"
SHORT_ID = 8  # characters of an id the tables show; `find` takes any unique prefix of 6 or more


class TrainGroup(TyperGroup):
    """`maestrale train SPEC.yaml …` runs `maestrale train run SPEC.yaml …`; the other words are commands.

    Training from a spec stays the short form it always was, next to `list`, `status` and `cancel`.
    """

    default = "run"

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default, *args]
        return super().parse_args(ctx, args)


# -- where the requests are -----------------------------------------------------------------------
class _Requests:
    """The requests of the embedded database or of a server, with one interface for the commands."""

    def __init__(self, registry: str | None, token: str | None) -> None:
        self.session = None
        self.table = None
        if registry:
            from maestrale.registry.remote import RemoteSession

            self.session = RemoteSession(registry, token=token)
        else:
            from maestrale.config import load_settings
            from maestrale.training.requests import TrainingRequests

            settings = load_settings()
            assert settings.database_url  # filled by the Settings defaults
            self.table = TrainingRequests(settings.database_url, settings.auto_upgrade)

    def list(self, **filters: Any) -> list[TrainingRecord]:
        if self.table is not None:
            return self.table.list(**filters)
        return self._records(self._json("GET", API, params={k: v for k, v in filters.items() if v}))

    def find(self, ref: str) -> builtins.list[TrainingRecord]:
        if self.table is not None:
            return self.table.find(ref)
        from maestrale.errors import NotFound

        try:
            return self._records([self._json("GET", f"{API}/{ref}")])
        except NotFound:  # not a request: the members of a fleet, if it is one
            members = self._records(self._json("GET", API, params={"fleet_id": ref}))
            if not members:
                raise
            return members

    def cancel(self, ref: str) -> builtins.list[TrainingRecord]:
        if self.table is not None:
            import getpass

            return self.table.cancel(ref, by=getpass.getuser())
        return self._records(self._json("POST", f"{API}/{ref}/cancel"))

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        assert self.session is not None
        return self.session.json(method, path, **kwargs)

    @staticmethod
    def _records(data: builtins.list[Any]) -> builtins.list[TrainingRecord]:
        from maestrale.training.requests import TrainingRecord

        return [TrainingRecord.model_validate(d) for d in data]


# -- rows -----------------------------------------------------------------------------------------
def _version(r: TrainingRecord) -> str:
    return "-" if r.version is None else f"{r.name}:{r.version}"


def _row(r: TrainingRecord) -> list[Any]:
    nmae = fmt_metric((r.metrics or {}).get("nmae"))
    error = (r.error or "").splitlines()[0][:70] if r.error else ""
    return [r.id[:SHORT_ID], r.name, r.status, _version(r), nmae, r.attempts, fmt_time(r.created_at), error]


COLUMNS = ["id", "model", "status", "version", "nMAE", "attempts", "requested", "error"]


# -- commands -------------------------------------------------------------------------------------
StatusOpt = Annotated[
    str | None,
    typer.Option(
        "--status", help="Only requests in this status: queued, started, completed, failed, cancelled."
    ),
]

IdArg = Annotated[
    str, typer.Argument(metavar="ID", help="A request or fleet id, or its first 8 characters (see `list`).")
]


def list_(
    name: Annotated[str | None, typer.Option("--name", help="Only the requests of this model.")] = None,
    fleet: Annotated[str | None, typer.Option("--fleet", help="Only the members of this fleet id.")] = None,
    status: StatusOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many.")] = 50,
    registry: RegistryUrl = None,
    token: Token = None,
    as_json: JsonFlag = False,
) -> None:
    """Training requests, newest first: model, status, the version it registered or why it failed.

    Example: `maestrale train list --status failed`
    """
    records = _Requests(registry, token).list(name=name, fleet_id=fleet, status=status, limit=limit)
    if as_json:
        print_json(records)
        return
    if not records:
        note(
            "no training requests"
            + (" match" if name or fleet or status else " yet: `maestrale train SPEC.yaml`")
        )
        return
    table(None, COLUMNS, [_row(r) for r in records], no_wrap=["id", "model", "requested"])


def status(
    ref: IdArg,
    registry: RegistryUrl = None,
    token: Token = None,
    as_json: JsonFlag = False,
) -> None:
    """One training request with its error, or the members of a fleet.

    Example: `maestrale train status 3f2a9c01`
    """
    records = _Requests(registry, token).find(ref)
    one = len(records) == 1 and records[0].id.lower().startswith(ref.strip().lower())  # else a fleet
    if as_json:
        print_json(records[0] if one else records)
        return
    if not one:
        counts = ", ".join(
            f"{sum(r.status == s for r in records)} {s}" for s in sorted({r.status for r in records})
        )
        say(f"fleet {records[0].fleet_id}: {len(records)} request(s), {counts}")
        table(None, COLUMNS, [_row(r) for r in records], no_wrap=["id", "model", "requested"])
        return
    [r] = records
    fields(
        f"training request {r.id}",
        [
            ("model", r.name), ("status", r.status), ("version", _version(r)),
            ("metrics", " ".join(f"{k}={fmt_metric(v)}" for k, v in sorted((r.metrics or {}).items()))),
            ("attempts", r.attempts), ("worker", r.worker), ("fleet", r.fleet_id), ("reason", r.reason),
            ("requested by", r.requested_by), ("requested", fmt_time(r.created_at)),
            ("updated", fmt_time(r.updated_at)), ("error", r.error),
        ],
    )  # fmt: skip


def cancel(
    ref: IdArg,
    registry: RegistryUrl = None,
    token: Token = None,
    as_json: JsonFlag = False,
) -> None:
    """Cancel a queued or running training request (or every unfinished member of a fleet).

    A queued request is never trained: the worker that receives it skips it and reports
    `train.failed` with the error "cancelled". A started one is stopped: its worker kills the
    training process within 2 s (a version it registered before that stays).

    Example: `maestrale train cancel 3f2a9c01`
    """
    records = _Requests(registry, token).cancel(ref)
    if as_json:
        print_json(records)
        return
    for r in records:
        if r.status != "cancelled":
            say(f"{r.id[:SHORT_ID]} {r.name}: already {r.status}, left as it is")
        elif r.worker:
            say(f"{r.id[:SHORT_ID]} {r.name}: cancelled; worker {r.worker} stops its training within 2 s")
        else:
            say(f"{r.id[:SHORT_ID]} {r.name}: cancelled; it will not be trained")


# -- `train --wait`: is anyone consuming? ---------------------------------------------------------
def no_worker_notice(settings: Settings, transport: Transport) -> str | None:
    """The line `maestrale train --wait` prints when no worker consumes the training queue, else None.

    >>> no_worker_notice(settings, transport)  # doctest: +SKIP
    'no worker consumes maestrale.training on rabbitmq:5672: the requests wait in the queue; …'
    """
    from maestrale.bus.topology import TRAINING
    from maestrale.errors import MaestraleError

    try:
        count = transport.consumer_count(TRAINING.name)
    except MaestraleError:  # the broker's answer is a hint here, never a reason to stop waiting
        return None
    if count:
        return None
    broker = settings.broker_url.split("@")[-1]  # never print credentials
    return (
        f"no worker consumes {transport.queue_name(TRAINING.name)} on {broker}: the requests wait in "
        f"the queue until one runs. Start one where MAESTRALE_BROKER_URL, MAESTRALE_DATABASE_URL and "
        f"MAESTRALE_BUS_NAMESPACE are these: `{TRAINING.consumer}`. Still waiting (Ctrl-C stops "
        "waiting, not the requests; `maestrale train list` follows them)"
    )


def register(train_app: typer.Typer) -> None:
    """Attach `list`, `status` and `cancel` to the `maestrale train` group."""
    train_app.command("list")(list_)
    train_app.command("status")(status)
    train_app.command("cancel")(cancel)
