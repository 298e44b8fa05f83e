"""The `opsdeck` command: the client's calls from a shell.

Exit status: 0 done; 1 Opsdeck answered with an error (the problem document goes to stderr),
or a waited-for job did not succeed or a scanned file is not clean; 2 bad usage or missing
configuration; 3 no answer (connection, timeout) or a wait ran out of time.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opsdeck_client._version import __version__
from opsdeck_client.cli import commands
from opsdeck_client.cli.config import ConfigError, resolve
from opsdeck_client.cli.output import print_json, print_problem, print_table
from opsdeck_client.client import OpsdeckClient
from opsdeck_client.errors import OpsdeckError, TransportError

Handler = Callable[[OpsdeckClient, argparse.Namespace], commands.Outcome]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opsdeck",
        description="Call the Opsdeck API: signed, retried, JSON out. Configure with OPSDECK_URL, "
        "OPSDECK_KEY_ID, OPSDECK_SECRET or a profile (~/.config/opsdeck/profiles.toml, $OPSDECK_CONFIG).",
    )
    parser.add_argument("--version", action="version", version=f"opsdeck {__version__}")
    # The common options work before the command and after it (`opsdeck jobs list --table`):
    # after it they default to SUPPRESS, so that leaving them out keeps the ones given before.
    common = argparse.ArgumentParser(add_help=False)
    for target, unset in ((parser, False), (common, True)):
        target.add_argument(
            "--profile", default=argparse.SUPPRESS if unset else None, help="a profile of the profiles file"
        )
        target.add_argument(
            "--table", action="store_true", default=argparse.SUPPRESS if unset else False, help="a table, not JSON"
        )
        target.add_argument(
            "--timeout",
            type=float,
            default=argparse.SUPPRESS if unset else 120.0,
            metavar="SECONDS",
            help="how long --wait and the wait commands wait (default 120)",
        )
        target.add_argument(
            "--retries",
            type=int,
            default=argparse.SUPPRESS if unset else 3,
            help="tries after the first for connection errors, timeouts, 429 and 5xx but 501 (default 3)",
        )
    areas = parser.add_subparsers(dest="area", required=True, metavar="COMMAND")

    def command(group: Any, name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    def keyed(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--idempotency-key", help="the request's Idempotency-Key (default: a fresh one)")

    jobs = areas.add_parser("jobs", help="submit, read, list, cancel, retry and wait for jobs")
    verbs = jobs.add_subparsers(dest="verb", required=True, metavar="VERB")
    sub = command(verbs, "submit", commands.jobs_submit, "submit a job")
    sub.add_argument("type", help="the job type, e.g. system.echo")
    sub.add_argument("--payload", help="the payload, a JSON object (@FILE reads a file, @- stdin)")
    sub.add_argument("--priority", choices=("high", "normal", "low"))
    sub.add_argument("--delay", type=float, metavar="SECONDS", help="run it no sooner than this")
    sub.add_argument("--max-attempts", type=int)
    sub.add_argument("--job-key", help="the job's own idempotency_key (kept as long as the job)")
    sub.add_argument("--wait", action="store_true", help="wait until it finishes (exit 1 unless it succeeded)")
    keyed(sub)
    for name, handler, what in (
        ("get", commands.jobs_get, "read a job"),
        ("cancel", commands.jobs_cancel, "cancel a job that has not started"),
        ("retry", commands.jobs_retry, "run a dead or cancelled job again"),
        ("wait", commands.jobs_wait, "wait until a job finishes (exit 1 unless it succeeded)"),
    ):
        sub = command(verbs, name, handler, what)
        sub.add_argument("id")
        if name in ("cancel", "retry"):
            keyed(sub)
    sub = command(verbs, "list", commands.jobs_list, "list jobs, newest first")
    sub.add_argument("--status")
    sub.add_argument("--type")
    sub.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")

    events = areas.add_parser("events", help="publish and read events")
    verbs = events.add_subparsers(dest="verb", required=True, metavar="VERB")
    sub = command(verbs, "publish", commands.events_publish, "publish an event to the subscribed endpoints")
    sub.add_argument("type", help="the event type, e.g. order.paid")
    sub.add_argument("--data", help="the payload, JSON (@FILE reads a file, @- stdin); default {}")
    sub.add_argument("--id", help="your own id for the event: publishing it again is answered with the first")
    keyed(sub)
    sub = command(verbs, "get", commands.events_get, "read an event with its deliveries")
    sub.add_argument("id")

    scans = areas.add_parser("scans", help="upload files for scanning, read verdicts, download clean files")
    verbs = scans.add_subparsers(dest="verb", required=True, metavar="VERB")
    sub = command(verbs, "upload", commands.scans_upload, "upload a file to be scanned")
    sub.add_argument("file", help="the file (- reads stdin; give --name)")
    sub.add_argument("--name", help="the file name to send (default: the file's)")
    sub.add_argument("--wait", action="store_true", help="wait for the verdict (exit 1 unless clean)")
    keyed(sub)
    for name, handler, what in (
        ("get", commands.scans_get, "read a scan"),
        ("wait", commands.scans_wait, "wait for a verdict (exit 1 unless clean)"),
    ):
        command(verbs, name, handler, what).add_argument("id")
    sub = command(verbs, "list", commands.scans_list, "list scans, newest first")
    sub.add_argument("--status")
    sub.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    sub = command(verbs, "download", commands.scans_download, "download a clean file")
    sub.add_argument("id")
    sub.add_argument("-o", "--output", metavar="FILE", help="write it here (default: stdout)")

    sub = command(areas, "request", commands.request, "any API call: METHOD PATH [BODY]")
    sub.add_argument("method", type=str.upper, help="GET, POST, PATCH, DELETE…")
    sub.add_argument("path", help="e.g. /api/v1/jobs?status=dead")
    sub.add_argument("body", nargs="?", help="JSON (@FILE reads a file, @- stdin)")
    sub.add_argument("--content-type", help="send BODY (@FILE) as raw bytes of this type, not JSON")
    sub.add_argument("-o", "--output", metavar="FILE", help="write the answer's body here")
    sub.add_argument("-i", "--include", action="store_true", help="the status and headers, on stderr")
    keyed(sub)
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    import os

    args = build_parser().parse_args(argv)
    try:
        settings = resolve(args.profile, os.environ if environ is None else environ)
    except ConfigError as err:
        print(f"opsdeck: {err}", file=sys.stderr)
        return 2
    client = OpsdeckClient(settings.url, settings.key_id, settings.secret, retries=args.retries)
    try:
        handler: Handler = args.handler
        value, status = handler(client, args)
    except commands.UsageError as err:
        print(f"opsdeck: {err}", file=sys.stderr)
        return 2
    except TransportError as err:
        print(f"opsdeck: no answer: {err.detail}", file=sys.stderr)
        return 3
    except OpsdeckError as err:
        print_problem(err.problem or {"status": err.status, "title": err.title, "detail": err.detail})
        return 1
    except TimeoutError as err:
        print(f"opsdeck: {err}", file=sys.stderr)
        return 3
    finally:
        client.close()
    if value is not None:
        try:
            (print_table if args.table else print_json)(value)
        except BrokenPipeError:  # `opsdeck … | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
    return status
