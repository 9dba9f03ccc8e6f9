"""The ``engage`` console command: parse arguments, load settings once, run one command.

Exit codes: 0 success, 1 partial failure (e.g. rejected CSV rows), 2 a configuration, file
or database problem explained in one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage import db as storage_db  # no Tortoise until a command uses it

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger("engage")

Command = Callable[["Settings", argparse.Namespace], Coroutine[Any, Any, int]]


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


async def _db_check(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 1 when a reference the database does not enforce (``storage.integrity``) points at a
    row that is gone, listing the first few ids."""
    from storage.integrity import orphans

    await storage_db.upgrade(settings.database.url, pool_max=settings.database.pool_max)
    try:
        found = await orphans()
    finally:
        await storage_db.close()
    print(f"database check: {storage_db.describe_url(settings.database.url)}")
    for item in found:
        ids = ", ".join(str(i) for i in item.sample)
        more = ", …" if item.count > len(item.sample) else ""
        print(f"  {item.reference}: {item.count} orphan rows"
              + (f" (ids {ids}{more})" if ids else ""))
    broken = sum(item.count for item in found)
    print("  no orphan rows" if broken == 0 else f"  {broken} orphan rows in all")
    return 0 if broken == 0 else 1


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    """Check what can fail cheaply — the configuration (already loaded), the database, the
    port — before importing the bot stack: a mistake is reported at once.

    Pending migrations are applied next, before the import, while the heap is small: after
    it, every full collection the migrations trigger scanned the bot stack's objects too, and
    a first start took three times the CPU. The import runs with the garbage collector paused
    (it allocates objects that live as long as the process, see ``bot.web.heap``), and what it
    made is frozen at once, so the rest of start-up does not scan it either. aiogram is not
    part of it: its import alone builds pydantic models for seconds (tens of seconds on a
    loaded machine), so the app listens first and imports it beside the running app, the
    same way (``bot.web.late``)."""
    import gc
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
    await storage_db.upgrade(settings.database.url, pool_max=settings.database.pool_max)
    await storage_db.close()
    gc.disable()
    try:
        from bot.web.app import serve  # the bot stack but aiogram: only now
    finally:
        gc.freeze()  # a few thousand objects of garbage among them: not worth a full pass
        gc.enable()

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


async def _retention(settings: Settings, args: argparse.Namespace) -> int:
    from scheduler.jobs import retention_cutoffs
    from storage import retention

    keep = settings.retention
    await storage_db.upgrade(settings.database.url, pool_max=settings.database.pool_max)
    try:
        report = await retention.run(retention_cutoffs(datetime.now(UTC), keep),
                                     uploads=Path(settings.uploads.directory),
                                     batch=keep.batch_size, max_batches=keep.max_batches,
                                     dry_run=args.dry_run)
    finally:
        await storage_db.close()
    verb = "would remove" if args.dry_run else "removed"
    print(f"retention{' (dry run: nothing changed)' if args.dry_run else ''}: claim documents "
          f"after {keep.documents_days_after_close} days, inbound bodies after "
          f"{keep.inbound_days}, message parameters after {keep.message_params_days}")
    print(f"  documents        {report.documents:>10} {verb}")
    if not args.dry_run:
        print(f"  files            {report.files:>10} ({report.bytes} bytes)")
    print(f"  inbound bodies   {report.inbound_bodies:>10} {verb}")
    print(f"  message params   {report.message_params:>10} {verb}")
    for line in report.sample:
        print(f"  {verb}: {line}")
    if not report.complete:
        print(f"  more is due: stopped after {keep.max_batches} batches per kind")
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


async def _regions_list(settings: Settings, args: argparse.Namespace) -> int:
    from storage.regions import region_rows

    await storage_db.upgrade(settings.database.url, pool_max=settings.database.pool_max)
    try:
        rows = await region_rows(used=args.used)
    finally:
        await storage_db.close()
    print(f"{'code':<8} {'name':<10} {'English':<16} {'customers':>9}  latitude longitude  "
          "parent")
    for r in rows:
        custom = "" if r.builtin else "  (custom)"
        print(f"{r.code:<8} {r.name:<10} {r.name_en:<16} {r.customers:>9}  {r.latitude:8.4f} "
              f"{r.longitude:9.4f}  {r.parent}{custom}")
    print(f"{len(rows)} regions, {sum(r.customers for r in rows):,} customers")
    return 0


async def _regions_import(settings: Settings, args: argparse.Namespace) -> int:
    from storage.regions import RegionFileError, import_regions

    if not await asyncio.to_thread(Path(args.file).is_file):
        raise UsageError(f"{args.file}: no such file")
    await storage_db.upgrade(settings.database.url, pool_max=settings.database.pool_max)
    try:
        report = await import_regions(Path(args.file))
    except RegionFileError as exc:
        raise UsageError(str(exc)) from None
    finally:
        await storage_db.close()
    for problem in report.problems:
        print(problem)
    print(report.summary())
    return 0 if not report.problems else 1


async def _weather(settings: Settings, args: argparse.Namespace) -> int:
    from scheduler import weather
    from scheduler.context import PlanContext, outbox_sink
    from scheduler.forecast import ForecastSource, OpenMeteo, forecast_file

    own: OpenMeteo | None = None
    if args.forecast:
        try:
            source: ForecastSource = await asyncio.to_thread(forecast_file, args.forecast)
        except (OSError, ValueError) as exc:
            raise UsageError(str(exc)) from None
    else:
        source = own = OpenMeteo(settings.weather, timezone=settings.schedule.timezone)
    await storage_db.upgrade(settings.database.url, pool_max=settings.database.pool_max)
    try:
        ctx = PlanContext(day=args.date, today=args.date, schedule=settings.schedule,
                          care=settings.care, calendar=settings.holidays.calendar())
        result = await (weather.dry_run(ctx, settings.weather, source) if args.dry_run else
                        weather.queue(ctx, settings.weather, source,
                                      outbox_sink(ctx.batch_size)))
    finally:
        await storage_db.close()
        if own is not None:
            await own.close()
    _print_weather(args.date, result, dry_run=args.dry_run)
    return 0 if result.complete else 1


def _print_weather(day: date, result: Any, *, dry_run: bool) -> None:
    note = " (dry run: nothing written)" if dry_run else ""
    print(f"weather for {day.isoformat()}{note}: {result.regions} regions with customers "
          "fetched")
    for code, days in result.by_region.items():
        said = "; ".join(f"{d.isoformat()} {', '.join(hazards)}" for d, hazards in days)
        print(f"  {code:<8} {said}")
    if not result.by_region:
        print("  no hazards")
    if result.failed:
        print(f"  forecast unavailable for: {', '.join(result.failed)}")
    print(f"  {result.queued} notices {'would be queued' if dry_run else 'queued'}")
async def _one_customer(settings: Settings, args: argparse.Namespace) -> int:
    """The customer named by ``--id``, ``--customer-no`` or ``--phone``: exactly one, or a
    usage error (a number several customers share names nobody in particular)."""
    from storage.models import Customer
    from storage.phones import InvalidPhone, mask_phone, normalise_phone
    from storage.privacy import find_customers

    if args.id is not None:
        if not await Customer.exists(id=args.id):
            raise UsageError(f"no customer with id {args.id}")
        return int(args.id)
    phone = None
    if args.phone:
        try:
            phone = normalise_phone(args.phone, settings.company.default_phone_region)
        except InvalidPhone as exc:
            raise UsageError(f"--phone: {exc}") from None
    found = await find_customers(phone=phone, customer_no=args.customer_no)
    if not found:
        raise UsageError("no customer with " + (f"customer number {args.customer_no}"
                                                if args.customer_no else
                                                f"phone {mask_phone(phone or '')}"))
    if len(found) > 1:
        ids = ", ".join(str(c.id) for c in found)
        raise UsageError(f"{len(found)} customers have phone {mask_phone(phone or '')} "
                         f"(ids {ids}): name one with --customer-no or --id")
    return found[0].id


def _requester() -> Any:
    import getpass

    from storage.privacy import Requester

    return Requester(f"cli:{getpass.getuser()}"[:64])


async def _customer_export(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from storage import privacy

    await storage_db.upgrade(settings.database.url, pool_max=settings.database.pool_max)
    try:
        customer_id = await _one_customer(settings, args)
        now = datetime.now(UTC)
        export = await privacy.export_customer(customer_id, now=now)
        files = await privacy.document_files(customer_id)
        await privacy.audit(_requester(), "customer.export", customer_id, now=now,
                            after={"documents": len(files), "via": "cli"})
    finally:
        await storage_db.close()
    out = Path(args.out)
    json_path = out / f"customer-{customer_id}.json"
    zip_path = out / f"customer-{customer_id}.zip"

    def write() -> None:
        out.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(export, ensure_ascii=False, indent=2), encoding="utf-8")
        zip_path.write_bytes(privacy.export_zip(export, Path(settings.uploads.directory), files))

    await asyncio.to_thread(write)
    print(f"customer {customer_id}: {json_path} and {zip_path} ({len(files)} documents)")
    return 0


async def _customer_erase(settings: Settings, args: argparse.Namespace) -> int:
    from storage import privacy

    if not args.yes:
        raise UsageError("erasure cannot be undone: add --yes to erase")
    await storage_db.upgrade(settings.database.url, pool_max=settings.database.pool_max)
    try:
        customer_id = await _one_customer(settings, args)
        try:
            result = await privacy.erase_customer(customer_id, by=_requester(),
                                                  now=datetime.now(UTC),
                                                  uploads=Path(settings.uploads.directory))
        except privacy.ErasureRefused as exc:
            raise UsageError(str(exc)) from None
    finally:
        await storage_db.close()
    if result.already:
        print(f"customer {customer_id} was already erased: nothing changed")
    else:
        print(f"customer {customer_id} erased: {result.documents} documents, {result.inbound} "
              f"inbound messages deleted; {result.messages_cleared} messages cleared, "
              f"{result.messages_skipped} unsent skipped; the phone is suppressed")
    return 1 if result.files_failed else 0


async def _customer_consents(settings: Settings, args: argparse.Namespace) -> int:
    import csv

    from storage import privacy

    await storage_db.upgrade(settings.database.url, pool_max=settings.database.pool_max)
    try:
        ids = None
        if args.id is not None or args.customer_no or args.phone:
            ids = [await _one_customer(settings, args)]
        target = Path(args.out)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(privacy.CONSENT_COLUMNS)
        await asyncio.to_thread(target.write_text, "", encoding="utf-8")
        count = 0
        async for row in privacy.consent_evidence(ids):
            writer.writerow(row)
            count += 1
            if buffer.tell() > 256 * 1024:
                await asyncio.to_thread(_append, target, buffer)
        await asyncio.to_thread(_append, target, buffer)
    finally:
        await storage_db.close()
    print(f"{count} consent changes written to {args.out}")
    return 0


def _append(target: Path, buffer: io.StringIO) -> None:
    with target.open("a", newline="", encoding="utf-8") as handle:
        handle.write(buffer.getvalue())
    buffer.seek(0)
    buffer.truncate()


def _add_customer_selector(parser: argparse.ArgumentParser, *, required: bool) -> None:
    who = parser.add_mutually_exclusive_group(required=required)
    who.add_argument("--phone", help="the customer's phone (one customer only)")
    who.add_argument("--customer-no", help="the core system's customer number")
    who.add_argument("--id", type=_positive_int, help="Engage's customer id")


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

    retention = sub.add_parser("retention", help="remove what is past its retention time "
                               "now (claim documents, inbound bodies, message parameters)")
    retention.add_argument("--dry-run", action="store_true",
                           help="change nothing; count and list what would go")
    retention.set_defaults(func=_retention)

    database = sub.add_parser("db", help="database maintenance")
    db_sub = database.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("upgrade", help="apply pending migrations").set_defaults(func=_db_upgrade)
    db_sub.add_parser("check", help="references without a foreign key (the outbox's customer): "
                      "rows whose target is gone; exit 1 if any").set_defaults(func=_db_check)

    regions = sub.add_parser("regions", help="the regions weather notices are for")
    regions_sub = regions.add_subparsers(dest="regions_command", required=True,
                                         metavar="ACTION")
    regions_list = regions_sub.add_parser("list", help="regions with their customer counts")
    regions_list.add_argument("--used", action="store_true",
                              help="only regions with customers")
    regions_list.set_defaults(func=_regions_list)
    regions_import = regions_sub.add_parser(
        "import", help="custom areas from a CSV: code, name, name_en, full_name, latitude, "
        "longitude, timezone, parent")
    regions_import.add_argument("file", metavar="FILE.csv")
    regions_import.set_defaults(func=_regions_import)

    forecast = sub.add_parser("weather", help="fetch the forecast and queue a day's weather "
                              "notices (or show what would go)")
    forecast.add_argument("--date", type=_iso_date, required=True, metavar="YYYY-MM-DD")
    forecast.add_argument("--dry-run", action="store_true",
                          help="show regions, hazards and notice counts; write nothing")
    forecast.add_argument("--forecast", metavar="FILE.json",
                          help="read the forecast from a file instead of the weather service")
    forecast.set_defaults(func=_weather)

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

    customer = sub.add_parser("customer", help="a person's data: export, erasure, consents")
    customer_sub = customer.add_subparsers(dest="customer_command", required=True,
                                           metavar="ACTION")
    export = customer_sub.add_parser("export", help="everything held about one customer: "
                                     "JSON, and a ZIP with the documents (audited)")
    _add_customer_selector(export, required=True)
    export.add_argument("--out", default=".", help="directory for the files (default: .)")
    export.set_defaults(func=_customer_export)
    erase = customer_sub.add_parser("erase", help="erase one customer (pseudonymise, delete "
                                    "documents and inbound messages, suppress the phone)")
    _add_customer_selector(erase, required=True)
    erase.add_argument("--yes", action="store_true", help="really erase (cannot be undone)")
    erase.set_defaults(func=_customer_erase)
    consents = customer_sub.add_parser("consents", help="consent evidence as CSV: every "
                                       "change with channel, category, source and time")
    _add_customer_selector(consents, required=False)
    consents.add_argument("--out", required=True, help="the CSV file to write")
    consents.set_defaults(func=_customer_consents)
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
    args = parser.parse_args(argv)  # --help and usage errors end here, before any import
    _configure_logging(args.verbose)
    from bot.settings import ConfigError, load_settings

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
