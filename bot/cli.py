"""The ``engage`` console command: parse arguments, load settings once, run one command.

Exit codes: 0 success, 1 partial failure (e.g. rejected CSV rows), 2 a configuration, file
or database problem explained in one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bot.settings import ConfigError, Settings, load_settings
from storage import db as storage_db

log = logging.getLogger("engage")

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]


class UsageError(Exception):
    """A problem with the command's own input, reported in one line with exit code 2."""


def _iso_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number: {value!r}")
    return number


async def _db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    await storage_db.upgrade(settings.database.url, pool_max=settings.database.pool_max)
    await storage_db.close()
    print(f"database is up to date: {storage_db.describe_url(settings.database.url)}")
    return 0


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    """Check what can fail cheaply — the configuration (already loaded), the database, the
    port — before importing the bot stack, whose import alone builds aiogram's models for
    seconds (tens of seconds on a loaded machine): a mistake is reported at once."""
    import signal
    import socket

    await storage_db.check_reachable(settings.database.url)
    try:
        sock = socket.create_server((settings.web.host, settings.web.port))
    except OSError as exc:
        raise UsageError(f"cannot listen on {settings.web.host}:{settings.web.port} "
                         f"(web.host, web.port): {exc.strerror or exc}") from None
    sock.setblocking(False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    from bot.web.app import serve  # the bot stack: only now

    await serve(settings, stop, sock)
    return 0


async def _import(settings: Settings, args: argparse.Namespace) -> int:
    from storage.importer import ImportFileError, check_file, import_csv

    try:  # the file first: a bad one is one line on stderr, nothing connected or logged
        await check_file(args.kind, Path(args.file),
                         default_region=settings.company.default_phone_region)
    except ImportFileError as exc:
        raise UsageError(str(exc)) from None
    await storage_db.upgrade(settings.database.url, pool_max=settings.database.pool_max)
    try:
        report = await import_csv(
            args.kind,
            Path(args.file),
            default_region=settings.company.default_phone_region,
            out=sys.stdout,
            progress=sys.stderr.isatty() and not args.quiet,
            checked=True,
        )
        if args.kind in ("payments", "policies", "customers"):
            # Points for imported payments, cancellations and referrals, at once.
            from loyalty.jobs import settle_imports

            settled = await settle_imports(settings=settings.loyalty, now=datetime.now(UTC))
            log.info("loyalty: %d payments, %d cancellations, %d referrals settled",
                     settled.payments, settled.cancellations, settled.referrals)
    except ImportFileError as exc:
        raise UsageError(str(exc)) from None
    finally:
        await storage_db.close()
    return 0 if report.rejected == 0 else 1


async def _plan(settings: Settings, args: argparse.Namespace) -> int:
    from scheduler.context import PlanContext
    from scheduler.plan import dry_run, run_plan

    await storage_db.upgrade(settings.database.url, pool_max=settings.database.pool_max)
    try:
        # The given day is planned as if it were today (greetings included).
        ctx = PlanContext(day=args.date, today=args.date, schedule=settings.schedule,
                          renewal=settings.renewal, care=settings.care,
                          calendar=settings.holidays.calendar())
        result = await (dry_run(ctx) if args.dry_run else run_plan(ctx))
    finally:
        await storage_db.close()
    verb = "would queue" if args.dry_run else "queued"
    note = " (dry run: nothing written)" if args.dry_run else ""
    print(f"plan for {args.date.isoformat()}{note}")
    width = max(len(kind) for kind in result.counts)
    for kind, count in result.counts.items():
        print(f"  {kind:<{width}}  {count:>8}")
    print(f"  {'total':<{width}}  {result.total:>8} {verb}")
    for samples in result.samples.values():
        for sample in samples:
            print(f"  {verb}: {sample.dedup_key}  customer {sample.customer_id}  "
                  f"{sample.template_key}  not before {sample.not_before.isoformat()}")
    return 0


async def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    await storage_db.upgrade(settings.database.url, pool_max=settings.database.pool_max)
    try:
        await run_demo(settings, customers=args.customers, day=args.date, out=sys.stdout)
    finally:
        await storage_db.close()
    return 0


async def _partner_add(settings: Settings, args: argparse.Namespace) -> int:
    from loyalty.errors import InvalidRequest, PartnerExists
    from loyalty.partners import create_partner

    await storage_db.upgrade(settings.database.url, pool_max=settings.database.pool_max)
    try:
        partner, token = await create_partner(args.name, args.reward_kinds.split(","))
    except (InvalidRequest, PartnerExists) as exc:
        raise UsageError(str(exc)) from None
    finally:
        await storage_db.close()
    print(f"partner {partner.id} {partner.name!r} may verify: {', '.join(partner.reward_kinds)}")
    print("bearer token (shown only this once, store it now):")
    print(token)
    return 0


async def _operator_add(settings: Settings, args: argparse.Namespace) -> int:
    from bot.web.operators.access import InvalidOperator, OperatorExists, create_operator
    from storage.operator_models import Role

    await storage_db.upgrade(settings.database.url, pool_max=settings.database.pool_max)
    try:
        operator, token = await create_operator(
            args.name, Role(args.role),
            language=args.language or settings.operator.default_language,
            contact_phone=args.phone, default_region=settings.company.default_phone_region,
            branch=args.branch or "", manager=args.manager)
    except (InvalidOperator, OperatorExists) as exc:
        raise UsageError(str(exc)) from None
    finally:
        await storage_db.close()
    where = f", branch {operator.branch}" if operator.branch else ""
    manages = " (manager)" if operator.manager else ""
    print(f"operator {operator.id} {operator.name!r} with role {operator.role}{where}{manages}")
    print("bearer token (shown only this once, store it now):")
    print(token)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engage", description="Engage: customer engagement for car insurers."
    )
    parser.add_argument("--config", metavar="PATH", help="TOML file (default: $ENGAGE_CONFIG "
                        "or ./config.toml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("run", help="serve webhooks, API and console; run scheduler and dispatcher"
                   ).set_defaults(func=_run)

    demo = sub.add_parser("demo", help="offline demo: demo data, one day's plan, console delivery")
    demo.add_argument("--customers", type=_positive_int, default=200)
    demo.add_argument("--date", type=_iso_date, default=None,
                      help="the plan day (default: today in the care time zone)")
    demo.set_defaults(func=_demo)

    plan = sub.add_parser("plan", help="run one day's plan now (birthdays, festivals, "
                          "renewals, lapse rescues) and print counts per kind")
    plan.add_argument("--date", type=_iso_date, required=True,
                      help="the care-calendar day to plan, as if it were today (YYYY-MM-DD)")
    plan.add_argument("--dry-run", action="store_true",
                      help="write nothing; print what would be queued")
    plan.set_defaults(func=_plan)

    database = sub.add_parser("db", help="database maintenance")
    db_sub = database.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("upgrade", help="apply pending migrations").set_defaults(func=_db_upgrade)

    imp = sub.add_parser("import", help="import a CSV export from the core system")
    imp.add_argument("kind", choices=["customers", "policies", "claims", "payments"])
    imp.add_argument("file")
    imp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    imp.set_defaults(func=_import)

    partner = sub.add_parser("partner", help="service partners that verify vouchers")
    partner_sub = partner.add_subparsers(dest="partner_command", required=True, metavar="ACTION")
    partner_add = partner_sub.add_parser("add", help="create a partner and print its token once")
    partner_add.add_argument("name")
    partner_add.add_argument("--reward-kinds", required=True, metavar="KINDS",
                             help="comma-separated: car_wash,designated_driving,"
                             "annual_inspection,maintenance,gift")
    partner_add.set_defaults(func=_partner_add)

    operator = sub.add_parser("operator", help="people and systems using the operator API "
                              "and console")
    operator_sub = operator.add_subparsers(dest="operator_command", required=True,
                                           metavar="ACTION")
    operator_add = operator_sub.add_parser("add", help="create an operator and print its "
                                           "token once")
    operator_add.add_argument("name")
    operator_add.add_argument("--role", required=True, choices=["admin", "agent", "viewer"])
    operator_add.add_argument("--phone", help="own contact for campaign test sends")
    operator_add.add_argument("--language", choices=["zh-CN", "en"],
                              help="console language (default: operator.default_language)")
    operator_add.add_argument("--branch", help="branch code whose renewals they work "
                              "(policies' branch column), e.g. 310100")
    operator_add.add_argument("--manager", action="store_true",
                              help="the branch's manager: confirms and reassigns renewals")
    operator_add.set_defaults(func=_operator_add)
    return parser


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # aiogram.event logs every update at INFO ("Update id=… is handled"): our own logs say
    # what matters, and per-update lines cost throughput.
    for noisy in ("tortoise", "aiosqlite", "asyncio", "aiogram.event"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # twilio's HTTP client logs every request at INFO (10–12 lines per SMS: URL, headers,
    # status); worth seeing only when debugging.
    logging.getLogger("twilio").setLevel(logging.NOTSET if verbose else logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        settings = load_settings(args.config)
        command: Command = args.func
        return asyncio.run(command(settings, args))
    except ConfigError as exc:
        print(f"engage: {exc}", file=sys.stderr)
        return 2
    except storage_db.DatabaseUnavailable as exc:
        print(f"engage: {exc}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"engage: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
