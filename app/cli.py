"""`flask` commands: users, tenants, jobs, outbox. Each is a few lines around a service."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import TYPE_CHECKING

import click
from flask import Flask
from flask.cli import AppGroup

from app.extensions import db
from app.services import jobs, tenants, users
from app.services.jobs import outbox

if TYPE_CHECKING:
    from app.models import Job

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
    try:
        users.set_active(user, active, actor="cli")
    except users.UserError as err:
        raise click.ClickException(str(err)) from err
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
@click.option("--contact", "contact_email", help="Where Opsdeck writes to the tenant (e.g. endpoint disabled).")
def create_tenant(name: str, as_json: bool, contact_email: str | None) -> None:
    """Create a tenant and its first API key."""
    try:
        _print_key(tenants.create_tenant(name, contact_email=contact_email), as_json)
    except tenants.TenantError as err:
        raise click.ClickException(str(err)) from None


@tenants_cli.command("set-contact")
@click.argument("tenant")
@click.argument("email", required=False)
def set_contact(tenant: str, email: str | None) -> None:
    """Set TENANT's contact address (omit EMAIL to clear it)."""
    found = tenants.find_tenant(tenant)
    if found is None:
        raise click.ClickException(f"no tenant {tenant}")
    try:
        tenants.set_contact(found, email, actor="cli")
    except tenants.TenantError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"{found.name}: contact {found.contact_email or '(none)'}")


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


def _job_or_fail(job_id: str) -> Job:
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
    from app.services.jobs import ledger

    requeued, dead = ledger.recover_expired()
    click.echo(f"recovered {requeued} job(s), {dead} dead; published {outbox.relay()} job(s)")


retention_cli = AppGroup("retention", help="Retention policies, runs and legal holds.")


@retention_cli.command("list")
def retention_list() -> None:
    """Every data kind's policy."""
    from app.services import retention

    rules = retention.policies()
    for kind in retention.KINDS:
        p = rules[kind.name]
        state = "on " if p.enabled else "off"
        click.echo(f"{kind.name:20} {state} {p.days:6d} days  batch {p.batch_size:6d}  {kind.description}")


@retention_cli.command("set")
@click.argument("kind")
@click.argument("days", type=int)
@click.option("--enable/--disable", "enabled", default=None)
@click.option("--batch-size", type=int)
def retention_set(kind: str, days: int, enabled: bool | None, batch_size: int | None) -> None:
    """Keep KIND for DAYS days."""
    from app.services import retention

    try:
        p = retention.set_policy(kind, days=days, enabled=enabled, batch_size=batch_size, actor="cli")
    except retention.RetentionError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"{p.kind}: {p.days} days, {'enabled' if p.enabled else 'disabled'}, batch {p.batch_size}")


@retention_cli.command("run")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--kind", "kinds", multiple=True, help="Only this kind (repeatable).")
def retention_run(dry_run: bool, kinds: tuple[str, ...]) -> None:
    """Run retention now, in this process, and print the report."""
    from app.services import retention

    unknown = [k for k in kinds if k not in retention.BY_NAME]
    if unknown:
        raise click.ClickException(f"unknown kind(s): {', '.join(unknown)}")
    try:
        record = retention.run(dry_run=dry_run, kinds=list(kinds) or None, triggered_by="cli")
    except retention.RetentionError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"run {record.id}: {record.status}{' (dry run)' if dry_run else ''} in {record.duration_ms} ms")
    for name, count in record.counts.items():
        held = record.held.get(name)
        click.echo(
            f"  {name:20} {count:8d} {'would go' if dry_run else 'deleted'}" + (f", {held} held" if held else "")
        )
    if record.bytes_deleted:
        click.echo(f"  files freed: {record.bytes_deleted:,} bytes")
    if record.error:
        raise click.ClickException(record.error)


@retention_cli.command("hold")
@click.argument("tenant")
@click.option("--event", "event_id", help="Hold one event (and its deliveries) instead of the whole tenant.")
@click.option("--scan", "scan_id", help="Hold one scan (and its file) instead of the whole tenant.")
@click.option("--reason", required=True)
def retention_hold(tenant: str, event_id: str | None, scan_id: str | None, reason: str) -> None:
    """Put TENANT's rows (or one event, or one scan) on legal hold: no run deletes them."""
    from app.services import retention

    found = tenants.find_tenant(tenant)
    if found is None:
        raise click.ClickException(f"no tenant {tenant}")
    try:
        row = retention.hold(found.id, reason=reason, actor="cli", event_id=event_id, scan_id=scan_id)
    except retention.RetentionError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"hold {row.id} on {event_id or scan_id or found.name}")


@retention_cli.command("release")
@click.argument("hold_id", type=int)
def retention_release(hold_id: int) -> None:
    """Lift a legal hold."""
    from app.services import retention

    if not retention.release(hold_id, actor="cli"):
        raise click.ClickException(f"no hold {hold_id}")
    click.echo(f"released hold {hold_id}")


def register(app: Flask) -> None:
    for group in (users_cli, tenants_cli, jobs_cli, outbox_cli, retention_cli):
        app.cli.add_command(group)
