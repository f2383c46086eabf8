"""`maestrale policy check`: validate a monitoring policy file before the monitor uses it.

The command imports what it needs inside its body, so `maestrale --help` stays fast.

>>> from typer.testing import CliRunner
>>> from maestrale.cli.main import app
>>> CliRunner().invoke(app, ["policy", "check", "policy.yaml"]).exit_code  # doctest: +SKIP
0
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from maestrale.cli.output import JsonFlag, error, print_json, say

policy_app = typer.Typer(
    help="Monitoring policies: when a model is out of bounds and what the monitor does about it.",
    no_args_is_help=True,
)


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


def register(app: typer.Typer) -> None:
    """Attach `maestrale policy …` to the root app."""
    policy_app.command("check")(check)
    app.add_typer(policy_app, name="policy")
