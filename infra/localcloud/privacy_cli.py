"""``medspa privacy ...``: a spa admin serves a client's privacy request from a terminal.

    medspa privacy export  --spa bijoux --client c-1234 --by admin-maria [--out c-1234.json]
    medspa privacy correct --spa bijoux --client c-1234 --by admin-maria --phone +14075550199
    medspa privacy erase   --spa bijoux --client c-1234 --by admin-maria [--yes]

The same service the bus requests reach (``medspa.services.privacy``), wired from the deployed privacy
function's own configuration (``--stack``, default ``medspa``: its ``PrivacyFunctionName`` output, then
the function's environment), so the CLI acts on exactly the tables, bucket, bus and Stripe key the
deployment uses, with the admin's own AWS credentials. It works the same against AWS and inside a
local cloud (moto answers every AWS call in that process). Every request is recorded like a bus
request, with ``via: cli``. Nothing personal is printed except the export itself, which is what was
asked for; ``--out`` writes it to a file only the admin can read.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import boto3
import typer

from medspa.adapters.privacy import privacy_adapters_from
from medspa.adapters.store import ClientErased, ClientNotFound
from medspa.services.privacy import PrivacyService

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="A client's privacy rights, served by the spa's admin: export, correct contact, erase.")

Spa = Annotated[str, typer.Option("--spa", help="The spa's id, e.g. bijoux")]
ClientId = Annotated[str, typer.Option("--client", help="The client's id at the spa's booking site")]
By = Annotated[str, typer.Option("--by", help="Your staff id: recorded as who made the request")]
Request = Annotated[str | None, typer.Option("--request", help="The spa's reference for the request (ticket)")]
Stack = Annotated[str, typer.Option("--stack", help="The deployed CloudFormation stack")]
Region = Annotated[str | None, typer.Option("--region", help="AWS region (default: your AWS configuration)")]


def deployed_function(stack: str, output: str, region: str | None) -> tuple[boto3.session.Session, dict[str, str]]:
    """A session and the environment of the function the stack names in ``output``, as it runs there: the CLIs
    act on exactly the tables, buckets, state machines and secrets the deployment uses."""
    session = boto3.session.Session(region_name=region)
    [described] = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    if output not in outputs:
        raise typer.BadParameter(f"stack {stack} has no {output} output: deploy this release first")
    environ = session.client("lambda").get_function_configuration(FunctionName=outputs[output])["Environment"][
        "Variables"]
    environ = {**environ, "AWS_REGION": session.region_name or os.environ.get("AWS_DEFAULT_REGION", "")}
    if os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        environ["AWS_ENDPOINT_URL_DYNAMODB"] = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
    return session, environ


def service_for(stack: str, region: str | None = None) -> PrivacyService:
    """The privacy service as the stack's privacy function (its ``PrivacyFunctionName`` output) is configured."""
    session, environ = deployed_function(stack, "PrivacyFunctionName", region)
    ssm = session.client("ssm")

    def stripe_key() -> str:
        return ssm.get_parameter(Name=environ["STRIPE_API_KEY_PARAMETER"], WithDecryption=True)["Parameter"]["Value"]

    return PrivacyService(**privacy_adapters_from(environ, session.client, stripe_key))


def _refused(error: Exception, spa: str, client: str) -> typer.Exit:
    if isinstance(error, ClientErased):
        typer.echo(f"client {client} of {spa} was erased at their request: nothing personal is held", err=True)
    else:
        typer.echo(f"no client {client} at {spa}", err=True)
    return typer.Exit(1)


@app.command()
def export(spa: Spa, client: ClientId, by: By, request: Request = None,
           out: Annotated[Path | None, typer.Option("--out", help="Write the export here (else stdout)")] = None,
           stack: Stack = "medspa", region: Region = None) -> None:
    """Everything held about the client, as one JSON document (format medspa.client-export/1)."""
    try:
        document = service_for(stack, region).export(spa, client, by, datetime.now(UTC), request_id=request)
    except (ClientNotFound, ClientErased) as error:
        raise _refused(error, spa, client) from None
    text = json.dumps(document, indent=2, ensure_ascii=False)
    if out is None:
        typer.echo(text)
        return
    out.touch(mode=0o600)
    out.write_text(text + "\n", encoding="utf-8")
    typer.echo(f"wrote {out}: {len(document['appointments'])} appointments, {len(document['ledger'])} ledger "
               f"entries, {len(document['consent'])} consent records", err=True)


@app.command()
def correct(spa: Spa, client: ClientId, by: By,
            phone: Annotated[str | None, typer.Option("--phone", help="The right number, E.164")] = None,
            email: Annotated[str | None, typer.Option("--email", help="The right address")] = None,
            first_name: Annotated[str | None, typer.Option("--first-name", help="What the client likes to be called")]
            = None,
            request: Request = None, stack: Stack = "medspa", region: Region = None) -> None:
    """Correct the client's first name, phone and/or email (the profile holds the only copy)."""
    if first_name is None and phone is None and email is None:
        raise typer.BadParameter("give --first-name, --phone, --email or any of them")
    try:
        service_for(stack, region).correct_contact(spa, client, phone=phone, email=email, first_name=first_name,
                                                   requested_by=by, now=datetime.now(UTC), request_id=request)
    except (ClientNotFound, ClientErased) as error:
        raise _refused(error, spa, client) from None
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    typer.echo("corrected: " + ", ".join(n for n, v in (("first name", first_name), ("phone", phone), ("email", email))
                                         if v is not None))


@app.command()
def erase(spa: Spa, client: ClientId, by: By, request: Request = None,
          yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
          stack: Stack = "medspa", region: Region = None) -> None:
    """Erase the client: contact details, Stripe customer, free text, consent; money records kept without them."""
    if not yes:
        typer.confirm(f"Erase client {client} of {spa}? This cannot be undone", abort=True)
    try:
        report = service_for(stack, region).erase(spa, client, by, datetime.now(UTC), request_id=request)
    except ClientNotFound as error:
        raise _refused(error, spa, client) from None
    summary: dict[str, Any] = report.model_dump()
    typer.echo("erased: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in summary.items()))
