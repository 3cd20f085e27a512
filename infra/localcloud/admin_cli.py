"""``medspa admin ...``: what the spa API answers and does, from a terminal, for an operator or a spa's admin.

    medspa admin token        --spa glow                      issue the spa's API token (give it to its booking site)
    medspa admin standing     --spa glow --client c-mei       strikes, prepay flag, balances
    medspa admin requirements --spa glow --location glow-hk [--client c-mei] [--party 2]
    medspa admin quote        --spa glow --appointment apt-7 [--reschedule]
    medspa admin timeline     --spa glow --appointment apt-7
    medspa admin waive        --spa glow --appointment apt-7 --fee no_show_fee --by manager-1
    medspa admin clear-prepay --spa glow --client c-mei --by manager-1

The same service the API's routes call (``medspa.services.spa_desk``), wired from the deployed spa API
function's own configuration (``--stack``, default ``medspa``: its ``SpaApiFunctionName`` output, then the
function's environment), with the admin's own AWS credentials. It works the same against AWS and inside a
local cloud (moto answers every AWS call in that process). Output is a table (rich), or JSON with ``--json``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from medspa.adapters.factory import Adapters
from medspa.adapters.settings import SpaApiSettings
from medspa.domain.api_token import api_token
from medspa.policy.loader import load_packs
from medspa.services.spa_desk import NotFound, NotOpen, NotWaivable, SpaDesk

from localcloud.privacy_cli import Region, Stack, deployed_function

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="The spa API from a terminal: a client's standing, quotes, timelines, waivers, prepay flags.")
console = Console()

Spa = Annotated[str, typer.Option("--spa", help="The spa's id, e.g. glow")]
ClientId = Annotated[str, typer.Option("--client", help="The client's id at the spa's booking site")]
AppointmentId = Annotated[str, typer.Option("--appointment", help="The appointment's id at the spa's booking site")]
By = Annotated[str, typer.Option("--by", help="Your staff id: recorded as who acted")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


def adapters_of(stack: str, region: str | None = None) -> Adapters:
    """The adapters exactly as the stack's spa API function (its ``SpaApiFunctionName`` output) is configured."""
    session, environ = deployed_function(stack, "SpaApiFunctionName", region)
    settings = SpaApiSettings(**{key.lower(): value for key, value in environ.items() if key != "AWS_REGION"},
                              AWS_REGION=environ["AWS_REGION"])
    return Adapters(settings, client=session.client)


def desk_of(stack: str, region: str | None) -> SpaDesk:
    adapters = adapters_of(stack, region)
    return SpaDesk(adapters.store, load_packs(), adapters.executions)


def _show(answer: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
        return
    table = Table(title=title, show_header=False)
    for key, value in answer.items():
        if key == "entries":
            continue
        table.add_row(key.replace("_", " "), _text(value))
    console.print(table)
    if answer.get("entries"):
        entries = Table("when (UTC)", "what", "kind", "status", "amount", title="timeline")
        for e in answer["entries"]:
            entries.add_row(e["at"] or "", e["what"], e["kind"], e["status"], _text(e["amount"]))
        console.print(entries)


def _text(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"amount", "currency"}:
        return f"{value['amount'] / 100:.2f} {value['currency']}"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value) or "-"
    return "-" if value is None else str(value)


def _refused(error: Exception) -> typer.Exit:
    typer.echo(str(error), err=True)
    return typer.Exit(1)


@app.command()
def token(spa: Spa, stack: Stack = "medspa", region: Region = None) -> None:
    """The spa's API token, for its booking site's 'Authorization: Bearer' header (rotate the secret to revoke)."""
    typer.echo(api_token(adapters_of(stack, region).spa_api_key(), spa))


@app.command()
def standing(spa: Spa, client: ClientId, stack: Stack = "medspa", region: Region = None,
             as_json: AsJson = False) -> None:
    """A client's strikes, prepay flag, balances and whether a card is on file."""
    try:
        _show(desk_of(stack, region).standing(spa, client).model_dump(mode="json"), as_json, f"{spa} client {client}")
    except NotFound as error:
        raise _refused(error) from None


@app.command()
def requirements(spa: Spa, location: Annotated[str, typer.Option("--location", help="The location's id")],
                 client: Annotated[str | None, typer.Option("--client", help="The client, if known")] = None,
                 party: Annotated[int, typer.Option("--party", min=1, max=50, help="Party size")] = 1,
                 stack: Stack = "medspa", region: Region = None, as_json: AsJson = False) -> None:
    """What a booking must include: prepayment, a card for the party size, the balance the client owes."""
    try:
        answer = desk_of(stack, region).booking_requirements(spa, client, location, party)
    except NotFound as error:
        raise _refused(error) from None
    _show(answer.model_dump(mode="json"), as_json, f"{spa} booking requirements")


@app.command()
def quote(spa: Spa, appointment: AppointmentId,
          reschedule: Annotated[bool, typer.Option("--reschedule", help="Moving the visit, not cancelling")] = False,
          stack: Stack = "medspa", region: Region = None, as_json: AsJson = False) -> None:
    """If the visit were cancelled (or moved) now: late or not, the fee, and what would pay it."""
    try:
        answer = desk_of(stack, region).cancellation_quote(spa, appointment, "reschedule" if reschedule else "cancel",
                                                           datetime.now(UTC))
    except (NotFound, NotOpen) as error:
        raise _refused(error) from None
    _show(answer.model_dump(mode="json"), as_json, f"{spa} {appointment}: if {'moved' if reschedule else 'cancelled'} now")


@app.command()
def timeline(spa: Spa, appointment: AppointmentId, stack: Stack = "medspa", region: Region = None,
             as_json: AsJson = False) -> None:
    """A visit's messages and ledger in order, and its execution's console link."""
    try:
        _show(desk_of(stack, region).timeline(spa, appointment).model_dump(mode="json"), as_json,
              f"{spa} {appointment}")
    except NotFound as error:
        raise _refused(error) from None


@app.command()
def waive(spa: Spa, appointment: AppointmentId, by: By,
          fee: Annotated[str, typer.Option("--fee", help="no_show_fee, late_cancel_fee or late_reschedule_fee")],
          stack: Stack = "medspa", region: Region = None) -> None:
    """Waive a fee: refund what the card paid, cancel what is owed (the waiver run FeeWaived starts)."""
    try:
        started = desk_of(stack, region).waive_fee(spa, appointment, fee, by)
    except NotWaivable as error:
        raise typer.BadParameter(str(error), param_hint="--fee") from None
    except NotFound as error:
        raise _refused(error) from None
    typer.echo(f"waiver {'already running' if started.already_running else 'started'}: {started.name}")


@app.command("clear-prepay")
def clear_prepay(spa: Spa, client: ClientId, by: By, stack: Stack = "medspa", region: Region = None) -> None:
    """Lift the client's prepay-at-booking requirement (set by the strike policy)."""
    try:
        answer = desk_of(stack, region).clear_prepay(spa, client, by, datetime.now(UTC))
    except NotFound as error:
        raise _refused(error) from None
    typer.echo(f"prepay required: {'yes' if answer.prepay_required else 'no'}")
