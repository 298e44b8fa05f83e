"""`flask` commands: users, tenants, jobs, outbox. Each is a few lines around a service."""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import click
from flask import Flask
from flask.cli import AppGroup

from app.extensions import db
from app.services import jobs, outbox, tenants, users

users_cli = AppGroup("users", help="Admin users.")
tenants_cli = AppGroup("tenants", help="Tenants and API keys.")
jobs_cli = AppGroup("jobs", help="The job ledger.")
outbox_cli = AppGroup("outbox", help="The outbox relay.")


@users_cli.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "viewer"]), default="viewer", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_user(email: str, role: str, password_stdin: bool) -> None:
    """Create an admin-page user."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = users.create_user(email, password, role)
    except users.UserError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"created {user.role} {user.email}")


def _set_active(email: str, active: bool) -> None:
    user = users.find(email)
    if user is None:
        raise click.ClickException(f"no user {email}")
    users.set_active(user, active, actor="cli")
    click.echo(f"{'activated' if active else 'deactivated'} {user.email}")


@users_cli.command("deactivate")
@click.argument("email")
def deactivate_user(email: str) -> None:
    """End every session of an operator and refuse further logins."""
    _set_active(email, False)


@users_cli.command("activate")
@click.argument("email")
def activate_user(email: str) -> None:
    """Let a deactivated operator log in again."""
    _set_active(email, True)


def _print_key(issued: tenants.IssuedKey, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(issued.as_dict()))
        return
    click.echo(f"tenant id: {issued.tenant_id}\nkey id:    {issued.key_id}\nsecret:    {issued.secret}")
    click.echo("The secret is shown once; store it now.")


@tenants_cli.command("create")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print {tenant_id, key_id, secret} as JSON.")
def create_tenant(name: str, as_json: bool) -> None:
    """Create a tenant and its first API key."""
    try:
        _print_key(tenants.create_tenant(name), as_json)
    except tenants.TenantError as err:
        raise click.ClickException(str(err)) from None


@tenants_cli.command("rotate-key")
@click.argument("tenant")
@click.option(
    "--grace-hours",
    type=float,
    help="How long older keys keep working (default API_KEY_ROTATION_GRACE_HOURS; 0 revokes them now).",
)
@click.option("--json", "as_json", is_flag=True)
def rotate_key(tenant: str, grace_hours: float | None, as_json: bool) -> None:
    """Issue a new API key for TENANT (name or id)."""
    found = tenants.find_tenant(tenant)
    if found is None:
        raise click.ClickException(f"no tenant {tenant!r}")
    grace = None if grace_hours is None else timedelta(hours=grace_hours)
    _print_key(tenants.rotate_key(found, grace=grace), as_json)


@tenants_cli.command("revoke-key")
@click.argument("key_id")
def revoke_key(key_id: str) -> None:
    """Revoke one API key."""
    try:
        tenants.revoke_key(key_id)
    except tenants.TenantError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"revoked {key_id}")


@tenants_cli.command("list")
def list_tenants() -> None:
    from sqlalchemy import select

    from app.models import Tenant

    for tenant in db.session.scalars(select(Tenant).order_by(Tenant.created_at)):
        active = [k.id for k in tenant.keys if k.active]
        click.echo(f"{tenant.id}  {tenant.name}  keys: {', '.join(active) or '-'}")


@jobs_cli.command("list")
@click.option("--status")
@click.option("--type", "job_type")
@click.option("--limit", default=50, show_default=True)
def list_jobs(status: str | None, job_type: str | None, limit: int) -> None:
    """Newest jobs across all tenants."""
    try:
        page = jobs.list_jobs(jobs.JobFilter(all_tenants=True, status=status, job_type=job_type), limit=limit)
    except jobs.JobInputError as err:
        raise click.ClickException(json.dumps(err.messages)) from None
    for job in page.items:
        click.echo(
            f"{job.id}  {job.status:<9}  {job.type:<24} attempts {job.attempts}/{job.max_attempts}  {job.created_at:%Y-%m-%d %H:%M:%S}Z"
        )


def _job_or_fail(job_id: str):  # type: ignore[no-untyped-def]
    from app.models import Job

    job = db.session.get(Job, job_id)
    if job is None:
        raise click.ClickException(f"no job {job_id}")
    return job


@jobs_cli.command("retry")
@click.argument("job_id")
def retry_job(job_id: str) -> None:
    """Run a dead or cancelled job again."""
    try:
        jobs.retry(_job_or_fail(job_id), actor="cli")
        db.session.commit()
    except jobs.JobStateError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"retrying {job_id}")


@jobs_cli.command("cancel")
@click.argument("job_id")
def cancel_job(job_id: str) -> None:
    """Cancel a job that has not started."""
    try:
        jobs.cancel(_job_or_fail(job_id), actor="cli")
        db.session.commit()
    except jobs.JobStateError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"cancelled {job_id}")


@jobs_cli.command("retry-dead")
@click.option("--type", "job_type")
def retry_dead(job_type: str | None) -> None:
    """Retry every dead job (optionally of one type)."""
    click.echo(f"retrying {jobs.retry_dead(job_type=job_type, actor='cli')} dead job(s)")


@outbox_cli.command("relay")
def relay() -> None:
    """Recover lost workers' jobs and publish what is due, once."""
    from app.services import ledger

    requeued, dead = ledger.recover_expired()
    click.echo(f"recovered {requeued} job(s), {dead} dead; published {outbox.relay()} job(s)")


def register(app: Flask) -> None:
    for group in (users_cli, tenants_cli, jobs_cli, outbox_cli):
        app.cli.add_command(group)
