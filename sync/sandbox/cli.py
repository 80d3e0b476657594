"""`leadsync sandbox`: serve a snapshot or a synthetic portal as a HubSpot-compatible API on loopback."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

from sync.sandbox.faults import FaultSpec
from sync.sandbox.limits import RateLimitSpec
from sync.sandbox.webhooks import PushFaults

if TYPE_CHECKING:
    from sync.sandbox.portal import Portal

EXIT_OK, EXIT_FAILED = 0, 1


def _rate_limit(text: str) -> RateLimitSpec:
    try:
        return RateLimitSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _faults(text: str) -> FaultSpec:
    try:
        return FaultSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _webhook_faults(text: str) -> PushFaults:
    try:
        return PushFaults.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {text}")
    return value


def add_sandbox_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "sandbox",
        help="run a local HubSpot-compatible API",
        description="Serve a portal snapshot, or a synthetic portal, as a HubSpot-compatible API on 127.0.0.1, "
        "with HubSpot's rate limits and optional fault injection. Prints the base URL and the token, "
        "then runs until interrupted (SIGINT or SIGTERM). Admin endpoints live under /__sandbox/ "
        "(snapshot, stats, write_log, contacts, companies, associations, association_settings, form_submissions, "
        "email_events, rate_limit, faults).",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--snapshot", metavar="S", help="serve this snapshot JSON file")
    source.add_argument(
        "--contacts", type=_non_negative, metavar="N", help="generate a synthetic portal of N contacts (default 1000)"
    )
    parser.add_argument("--seed", type=int, default=1, metavar="S", help="seed of the synthetic portal (default 1)")
    parser.add_argument(
        "--shared-timestamp",
        type=_non_negative,
        default=0,
        metavar="N",
        help="give N synthetic contacts one lastmodifieddate, as a bulk import does",
    )
    parser.add_argument(
        "--companies",
        type=_non_negative,
        default=0,
        metavar="N",
        help="give the synthetic portal N companies, most contacts associated with one or more (default 0: none; "
        "about one per 8 contacts is typical)",
    )
    parser.add_argument(
        "--portal-id",
        type=int,
        default=None,
        metavar="ID",
        help="the portal id the sandbox answers as (default: the snapshot's, else 12345678)",
    )
    parser.add_argument("--port", type=_non_negative, default=0, metavar="P", help="port (default 0: pick a free one)")
    parser.add_argument("--token", default="sandbox-token", metavar="T", help="the bearer token to accept")
    parser.add_argument(
        "--rate-limit",
        type=_rate_limit,
        default=RateLimitSpec(),
        metavar="SPEC",
        help="per10s=190,search=5,daily=625000 (the default, Professional), a tier "
        "(free, starter, professional, enterprise) or off",
    )
    parser.add_argument(
        "--faults",
        type=_faults,
        default=FaultSpec(),
        metavar="SPEC",
        help="fault probabilities, e.g. 429=0.05,500=0.02,503=0.02,timeout=0.01,reset=0.01,partial=0.05 "
        "(offset=P: an email events offset has expired)",
    )
    parser.add_argument("--fault-seed", type=int, default=0, metavar="N", help="seed of the fault RNG (default 0)")
    parser.add_argument(
        "--fault-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a timeout fault holds the answer before closing (default 30)",
    )
    parser.add_argument(
        "--offset-ttl",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long an email events offset stays valid for its query (default 300)",
    )
    parser.add_argument(
        "--search-lag",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="search shows a change only this long after it was made, as HubSpot's indexing lags writes (a record "
        "created within it is not found; reads by id and the list endpoint see every change at once; default 0)",
    )
    parser.add_argument(
        "--webhook-url",
        metavar="URL",
        help="push signed v3 webhooks of contact creations and property changes (an admin edit, a form "
        "submission, a worker's own writes) to this URL, e.g. http://127.0.0.1:9108/webhooks/hubspot",
    )
    parser.add_argument(
        "--webhook-secret", metavar="S", default="sandbox-secret", help="the client secret that signs them"
    )
    parser.add_argument(
        "--webhook-faults",
        type=_webhook_faults,
        default=None,
        metavar="SPEC",
        help="delivery faults: duplicate=P (an event sent twice), reorder=P (a delivery's events shuffled)",
    )
    parser.add_argument(
        "--webhook-flush",
        type=float,
        default=0.2,
        metavar="SECONDS",
        help="how long changes are gathered into one delivery of up to 100 events (default 0.2)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request on stderr")
    parser.add_argument("--json", action="store_true", help="print the URL and token as one JSON line")
    parser.set_defaults(func=cmd_sandbox)
    return parser


def load_snapshot_portal(file: str, now_ms: int) -> tuple[Portal, list[str]]:
    from sync.sandbox.portal import Portal  # noqa: PLC0415 - loaded when the command runs, not for --help
    from sync.snapshot import load_snapshot_json  # noqa: PLC0415 - as above

    return Portal.from_snapshot(load_snapshot_json(file), now_ms)


def cmd_sandbox(args: argparse.Namespace) -> int:
    # Loaded when the command runs, so mounting it keeps `leadsync --help` fast.
    from sync.sandbox.generator import generate_portal  # noqa: PLC0415
    from sync.sandbox.server import Sandbox  # noqa: PLC0415

    if args.snapshot:
        portal, problems = load_snapshot_portal(args.snapshot, int(time.time() * 1000))
        for problem in problems:
            print(f"{args.snapshot}: {problem}", file=sys.stderr)
    else:
        contacts = 1000 if args.contacts is None else args.contacts
        if args.shared_timestamp > contacts:
            print(f"--shared-timestamp {args.shared_timestamp} is more than --contacts {contacts}", file=sys.stderr)
            return EXIT_FAILED
        portal = generate_portal(contacts, args.seed, shared_timestamp=args.shared_timestamp, companies=args.companies)
    if args.portal_id is not None:
        portal.portal_id = args.portal_id
    portal.search_lag_seconds = args.search_lag
    pusher = None
    if args.webhook_url:
        from sync.sandbox.webhooks import WebhookPusher  # noqa: PLC0415

        pusher = WebhookPusher(
            args.webhook_url,
            args.webhook_secret,
            lambda: portal.portal_id,
            flush_s=args.webhook_flush,
            faults=args.webhook_faults,
            seed=args.fault_seed,
        )
    try:
        sandbox = Sandbox(
            portal,
            webhooks=pusher,
            port=args.port,
            token=args.token,
            rate_limit=args.rate_limit,
            faults=args.faults,
            fault_seed=args.fault_seed,
            fault_timeout_seconds=args.fault_timeout,
            offset_ttl_seconds=args.offset_ttl,
            verbose=args.verbose,
        )
    except OSError as exc:
        print(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED

    def stop(signum: int, frame: FrameType | None) -> None:
        sandbox.stop()

    previous: dict[int, Any] = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        info = {
            "url": sandbox.url,
            "token": sandbox.token,
            "portal_id": portal.portal_id,
            "contacts": portal.contact_count(),
            "companies": portal.company_count(),
            "rate_limit": args.rate_limit.describe(),
            "faults": args.faults.describe(),
            "search_lag_seconds": args.search_lag,
            "webhooks": args.webhook_url or None,
        }
        if args.json:
            print(json.dumps(info), flush=True)
        else:
            records = f"{info['contacts']} contacts" + (f", {info['companies']} companies" if info["companies"] else "")
            print(f"HubSpot sandbox for portal {info['portal_id']} ({records}) at {sandbox.url}")
            print(f"token: {sandbox.token}")
            print(f"rate limit: {info['rate_limit']}; faults: {info['faults']}; search lag: {args.search_lag:g} s")
            print("stop with Ctrl-C", flush=True)
        sandbox.serve_forever()
    finally:
        sandbox.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK
