"""What each `opsdeck` command does: a few lines around one client call each."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

from opsdeck_client.cli.output import write_bytes
from opsdeck_client.client import OpsdeckClient

#: What a command hands back: the value to print, and the exit status.
Outcome = tuple[Any, int]


class UsageError(Exception):
    """Bad input on the command line (exit status 2)."""


def json_arg(text: str | None, what: str) -> Any:
    """A JSON argument; `@FILE` reads it from a file, `@-` from stdin."""
    if text is None:
        return None
    try:
        if text.startswith("@"):
            text = sys.stdin.read() if text == "@-" else Path(text[1:]).read_text()
        return json.loads(text)
    except (OSError, ValueError) as err:
        raise UsageError(f"{what}: {err}") from None


# -- jobs --------------------------------------------------------------------------------------
def jobs_submit(client: OpsdeckClient, args: argparse.Namespace) -> Outcome:
    payload = json_arg(args.payload, "--payload")
    if payload is not None and not isinstance(payload, dict):
        raise UsageError("--payload: give a JSON object")
    job: Any = client.jobs.submit(
        args.type,
        payload,
        priority=args.priority,
        delay_seconds=args.delay,
        max_attempts=args.max_attempts,
        job_key=args.job_key,
        idempotency_key=args.idempotency_key,
    )
    if args.wait:
        return job_outcome(client.jobs.wait(job["id"], timeout=args.timeout))
    return job, 0


def job_outcome(job: Any) -> Outcome:
    """A finished job, and 0 only when it succeeded (`opsdeck jobs wait ID && …`)."""
    return job, 0 if job["status"] == "succeeded" else 1


def jobs_get(client: OpsdeckClient, args: argparse.Namespace) -> Outcome:
    return client.jobs.get(args.id), 0


def jobs_list(client: OpsdeckClient, args: argparse.Namespace) -> Outcome:
    pager = client.jobs.list(status=args.status, type=args.type, page_size=min(args.limit, 200))
    return list(itertools.islice(pager, args.limit)), 0


def jobs_cancel(client: OpsdeckClient, args: argparse.Namespace) -> Outcome:
    return client.jobs.cancel(args.id, idempotency_key=args.idempotency_key), 0


def jobs_retry(client: OpsdeckClient, args: argparse.Namespace) -> Outcome:
    return client.jobs.retry(args.id, idempotency_key=args.idempotency_key), 0


def jobs_wait(client: OpsdeckClient, args: argparse.Namespace) -> Outcome:
    return job_outcome(client.jobs.wait(args.id, timeout=args.timeout))


# -- events ------------------------------------------------------------------------------------
def events_publish(client: OpsdeckClient, args: argparse.Namespace) -> Outcome:
    data = json_arg(args.data, "--data")
    event = client.events.publish(
        args.type, {} if data is None else data, id=args.id, idempotency_key=args.idempotency_key
    )
    return event, 0


def events_get(client: OpsdeckClient, args: argparse.Namespace) -> Outcome:
    return client.events.get(args.id), 0


# -- scans -------------------------------------------------------------------------------------
def scans_upload(client: OpsdeckClient, args: argparse.Namespace) -> Outcome:
    if args.file == "-":
        if not args.name:
            raise UsageError("--name is needed to upload from stdin (the server checks the extension)")
        scan: Any = client.scans.upload(
            sys.stdin.buffer.read(), filename=args.name, idempotency_key=args.idempotency_key
        )
    else:
        if not Path(args.file).is_file():
            raise UsageError(f"{args.file}: no such file")
        scan = client.scans.upload(args.file, filename=args.name, idempotency_key=args.idempotency_key)
    if args.wait:
        return scan_outcome(client.scans.wait(scan["id"], timeout=args.timeout))
    return scan, 0


def scan_outcome(scan: Any) -> Outcome:
    """A scan with its verdict, and 0 only when the file is clean (`… --wait && use it`)."""
    return scan, 0 if scan["status"] == "clean" else 1


def scans_get(client: OpsdeckClient, args: argparse.Namespace) -> Outcome:
    return client.scans.get(args.id), 0


def scans_list(client: OpsdeckClient, args: argparse.Namespace) -> Outcome:
    pager = client.scans.list(status=args.status, page_size=min(args.limit, 200))
    return list(itertools.islice(pager, args.limit)), 0


def scans_wait(client: OpsdeckClient, args: argparse.Namespace) -> Outcome:
    return scan_outcome(client.scans.wait(args.id, timeout=args.timeout))


def scans_download(client: OpsdeckClient, args: argparse.Namespace) -> Outcome:
    if args.output and args.output != "-":
        written = client.scans.download_to(args.id, args.output)
        return {"id": args.id, "file": args.output, "bytes": written}, 0
    write_bytes(client.scans.download(args.id), None)
    return None, 0


# -- the generic call --------------------------------------------------------------------------
def request(client: OpsdeckClient, args: argparse.Namespace) -> Outcome:
    body: Any = None
    if args.body is not None:
        if args.body.startswith("@") and args.content_type:  # a file's bytes, sent as they are
            source = args.body[1:]
            body = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
        else:
            body = json_arg(args.body, "BODY")
    path = args.path if args.path.startswith("/") else "/" + args.path
    answer = client.request(
        args.method, path, body, idempotency_key=args.idempotency_key, content_type=args.content_type
    )
    if args.include:
        print(f"HTTP {answer.status}", file=sys.stderr)
        for name, value in answer.headers.items():
            print(f"{name}: {value}", file=sys.stderr)
    if not answer.content:
        return None, 0
    if answer.is_json and not args.output:
        return answer.json(), 0
    write_bytes(answer.content, args.output)
    return None, 0
