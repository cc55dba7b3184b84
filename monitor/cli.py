"""The `support-monitor` command: run, poll, import, metrics, report, digest, alerts, purge,
check, init, slo.

Exit status: 0 success, 1 a source, the SMTP server or the database failed, 2 a usage or
configuration error. Errors are one readable line; `--debug` adds the traceback.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from monitor import __version__
from monitor.errors import SupportMonitorError
from monitor.publish.printable import block, line

# The application (pydantic, SQLAlchemy, the tables, the connectors) is imported by `main` once
# the arguments are read, and what only some commands use (ingest, checks, the exporter,
# reports, rich's progress bar) by those commands: `--help`, `--version` and a usage error cost
# argparse alone, and `metrics`, `report` or a `poll` from cron pay only for what they run.
if TYPE_CHECKING:
    from sqlalchemy import Engine

    from monitor.config import Settings
    from monitor.store.ingest import PollResult

logger = logging.getLogger("monitor")


class UsageError(SupportMonitorError):
    """A command-line mistake: exit status 2."""


class PrintableFormatter(logging.Formatter):
    """Log lines as printable lines: a rejected record's place and reason, a source's error,
    may carry an outsider's text (a zip member's name, a server's answer), which must not
    reach the terminal or the journal as escape sequences or forged lines. A traceback
    (`--debug`) keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return line(super().formatMessage(record), LOG_LIMIT)


LOG_LIMIT = 2000  # characters of one log line


def utcnow() -> datetime:
    return datetime.now(UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="support-monitor",
        description="Measure how long customers wait for support, on every channel.",
    )
    parser.add_argument(
        "--config",
        "-c",
        help="the YAML config (default: $SUPPORT_MONITOR_CONFIG or ./support-monitor.yaml)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="debug logging and tracebacks on errors"
    )
    parser.add_argument("--version", action="version", version=f"support-monitor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "run", help="the service: poll every source on schedule, serve /metrics and /healthz"
    )
    poll = commands.add_parser(
        "poll", help="poll sources once (all by default) and print what was ingested"
    )
    poll.add_argument(
        "sources", nargs="*", metavar="SOURCE", help="source names (default: all enabled)"
    )
    imp = commands.add_parser("import", help="backfill files into a file-kind source")
    imp.add_argument("source", metavar="SOURCE")
    imp.add_argument("paths", nargs="+", metavar="PATH", type=Path)
    commands.add_parser("metrics", help="print the Prometheus exposition once and exit")
    report = commands.add_parser("report", help="responsiveness figures for a period")
    report.add_argument(
        "--since", help="start: a date (midnight in `timezone`) or ISO time; default 7 days ago"
    )
    report.add_argument("--until", help="end (exclusive): a date or ISO time; default now")
    report.add_argument("--format", choices=("table", "json", "csv"), default="table")
    report.add_argument(
        "--by",
        action="append",
        metavar="DIMENSION",
        help="break the figures down by source, queue, stage, team or agent; several "
        "(--by team --by agent, or --by team,agent) make a row per combination",
    )
    report.add_argument(
        "--items",
        action="store_true",
        help="list every inquiry and call behind the figures, with its arithmetic and verdict",
    )
    report.add_argument(
        "--source", action="append", metavar="SOURCE", help="only this source (repeatable)"
    )
    report.add_argument(
        "--team", action="append", metavar="TEAM", help="only what counts for this team"
    )
    report.add_argument(
        "--verdict",
        action="append",
        metavar="VERDICT",
        help="--items only: within, clamped, late, missed, open, open_past_target, unknown, "
        "waiting or left_out (repeatable)",
    )
    digest = commands.add_parser(
        "digest", help="build the daily digest for a day; send it or write the HTML"
    )
    digest.add_argument(
        "--date", help="the day, e.g. 2026-11-19 (default: yesterday in `timezone`)"
    )
    how = digest.add_mutually_exclusive_group()
    how.add_argument(
        "--send",
        action="store_true",
        help="send it to digest.to, once per day (a re-run sends nothing new)",
    )
    how.add_argument("--preview", metavar="FILE", type=Path, help="write the HTML to FILE instead")
    alerts = commands.add_parser(
        "alerts",
        help="evaluate the alert rules once, notify what changed and retry due notifications",
    )
    alerts.add_argument(
        "--once",
        action="store_true",
        help="evaluate once (the default; `run` evaluates on schedule)",
    )
    alerts.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would fire, resolve and be notified; store and send nothing",
    )
    commands.add_parser(
        "check",
        help="validate the config and try what `run` needs: the listen address, the database, "
        "every source (a sample of each file source's first records) and the SMTP server",
    )
    init = commands.add_parser(
        "init",
        help="write a short starter config with only the kinds of source asked for "
        "(never over an existing file)",
    )
    init.add_argument(
        "--kinds",
        metavar="KIND,...",
        help="the kinds of source, comma-separated, e.g. imap,call_csv (default: imap)",
    )
    init.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="where to write it; - for stdout (default: --config, $SUPPORT_MONITOR_CONFIG "
        "or ./support-monitor.yaml)",
    )
    slo = commands.add_parser(
        "slo",
        help="write the Prometheus rules of the config's `slo:` objectives (or sloth or pyrra "
        "specifications)",
    )
    slo.add_argument(
        "--format",
        choices=("prometheus", "sloth", "pyrra"),
        default="prometheus",
        help="recording and alerting rules (default), or a sloth or pyrra specification",
    )
    slo.add_argument(
        "--output", metavar="DIR", type=Path, help="write the files into DIR (default: print them)"
    )
    commands.add_parser(
        "password-hash",
        help="make the scrypt hash of a status page password (asked twice, or read from stdin) "
        "for `status.users`",
    )
    purge = commands.add_parser(
        "purge", help="delete what is older than `retention` once; print the rows per table"
    )
    purge.add_argument(
        "--dry-run", action="store_true", help="count what would be deleted; delete nothing"
    )
    return parser


@contextmanager
def start_up() -> Iterator[None]:
    """A stretch of start-up: importing, loading the settings, opening the store.

    Importing the application builds some 75,000 objects the collector tracks, nearly all of
    them kept as long as the process lives: the collections they would set off free next to
    nothing and cost about a tenth of the imports' CPU time (80 ms of a poll; 5% of a digest's
    instructions on an empty site). So the collector is off while they run, and what they
    built is then frozen out of its sight (not traversed again by every full collection)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
        gc.freeze()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, handlers=[handler])
    if not args.debug:  # APScheduler logs every job run at INFO; ours already says what happened
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    with start_up():
        from monitor.config_file import ConfigError
        from monitor.errors import StoreError
    # ingest allocates millions of short-lived objects: the youngest generation is collected
    # every 10,000 allocations instead of every 700.
    gc.set_threshold(10_000, *gc.get_threshold()[1:])
    try:
        return dispatch(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(line(f"config error: {problem}", LOG_LIMIT), file=sys.stderr)
        return 2
    except UsageError as exc:
        print(line(f"support-monitor: {exc}", LOG_LIMIT), file=sys.stderr)
        return 2
    except StoreError as exc:
        if args.debug:
            logger.exception("database error")
        print(line(f"error: {exc}", LOG_LIMIT), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the outermost boundary: one line, no traceback
        if args.debug:
            raise
        error = f"error: {type(exc).__name__}: {exc} (run with --debug for details)"
        print(line(error, LOG_LIMIT), file=sys.stderr)
        return 1


def dispatch(args: argparse.Namespace) -> int:
    from monitor.config import NOTHING_TO_MONITOR
    from monitor.config_file import ConfigError, check_database, config_path, load_settings

    if args.command == "password-hash":  # needs no config
        return password_hash()
    if args.command == "init":  # writes a config: there is none to load yet
        return init(args.kinds, args.file or str(config_path(args.config)))
    # `poll` checks the database URL itself, once its first source's reading has begun.
    with start_up():
        settings = load_settings(config_path(args.config), database_later=args.command == "poll")
    if args.command in ("run", "poll") and not settings.sources:
        if args.command == "poll":  # a wrong URL is said first, as on loading
            check_database(settings)
        raise ConfigError([NOTHING_TO_MONITOR])
    if args.command == "check":
        from monitor.checks import run_checks

        # A check names files and what servers answered: printed as printable lines.
        return run_checks(settings, lambda said: print(line(said, LOG_LIMIT)))
    if args.command == "slo":  # from the config alone: no database
        return write_slo(settings, args.format, args.output, config_path(args.config).name)
    if args.command == "poll":  # opens the store once its first source's reading has begun
        return poll(settings, args.sources)
    with start_up():
        engine = open_store(settings)
    try:
        return with_store(args, settings, engine)
    finally:
        # Closed as the command ends, so that SQLite checkpoints its log and removes the -wal
        # and -shm files: the engine was made during start-up, whose objects are frozen, and
        # would not be collected at exit.
        engine.dispose()


def with_store(args: argparse.Namespace, settings: Settings, engine: Engine) -> int:
    """The commands that read or write the store, once it is open."""
    from monitor.config_file import ConfigError

    if args.command == "run":
        from monitor.publish.server import ListenError
        from monitor.publish.status_access import StatusAccessError
        from monitor.service import run

        try:
            return run(engine, settings)
        except ListenError as exc:  # the address is the config's to change: exit status 2
            raise ConfigError([f"metrics.listen: {exc.problem}"]) from None
        except StatusAccessError as exc:
            raise ConfigError([exc.problem]) from None
    if args.command == "import":
        return import_files(engine, settings, args.source, args.paths)
    if args.command == "metrics":
        from monitor.publish.exporter import exposition

        sys.stdout.write(exposition(engine, settings, utcnow).decode())
        return 0
    if args.command == "report":
        return report(engine, settings, args)
    if args.command == "alerts":
        return alerts(engine, settings, dry_run=args.dry_run)
    if args.command == "digest":
        return digest(engine, settings, args)
    if args.command == "purge":
        return purge(engine, settings, dry_run=args.dry_run)
    raise UsageError(f"unknown command {args.command!r}")


def init(kinds: str | None, file: str) -> int:
    """Write the starter config (monitor.starter); say what to do next."""
    from connectors import CONNECTORS
    from monitor.starter import StarterError, local_zone, parse_kinds, render, secrets, write

    try:
        chosen = parse_kinds(kinds, sorted(CONNECTORS))
    except StarterError as exc:
        raise UsageError(str(exc)) from None
    text = render(chosen, local_zone(), "THIS-FILE" if file == "-" else file)
    if file == "-":
        sys.stdout.write(text)
        return 0
    path = Path(file)
    try:
        write(path, text)
    except FileExistsError:
        raise UsageError(f"{path} exists already; init never overwrites a file") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path} ({exc.strerror})") from None
    needed = secrets(chosen)
    print(f"wrote {path}: edit the lines marked CHANGE ME", end="")
    print(f", set {' and '.join(needed)} in the environment" if needed else "", end="")
    print(f", then: support-monitor --config {path} check")
    return 0


def write_slo(settings: Settings, kind: str, output: Path | None, config_name: str) -> int:
    """The objectives of `slo:` as rules or specifications: printed, or written into `output`.
    What a format cannot do with an objective (a tier that cannot fire, opening hours pyrra
    cannot count) is said on stderr."""
    from monitor.config import slos
    from monitor.config_file import ConfigError
    from monitor.publish.slo import Unwritable, prometheus, pyrra, sloth

    objectives = slos(settings)
    if not objectives:
        raise UsageError("the config has no `slo:` objectives to write (see docs/slo.md)")
    write = {"prometheus": prometheus.rules, "sloth": sloth.specs, "pyrra": pyrra.specs}[kind]
    try:
        result = write(objectives, config_name)
    except Unwritable as exc:
        raise ConfigError(exc.problems) from None
    for note in result.notes:
        print(line(f"slo: {note}", LOG_LIMIT), file=sys.stderr)
    if output is None:
        sys.stdout.write("---\n".join(text for _, text in result.files))
        return 0
    for name, text in result.files:
        try:
            output.mkdir(parents=True, exist_ok=True)
            (output / name).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--output: cannot write {output / name} ({exc.strerror})") from None
        print(line(f"wrote {output / name}", LOG_LIMIT))
    return 0


def open_store(settings: Settings) -> Engine:
    """The database, opened and upgraded, its measurements made for the current settings."""
    from monitor.store.tallies import measurements_current

    engine = open_database(settings)
    if not measurements_current(engine, settings):  # ingest's modules only when they are not
        from monitor.store.ingest import reconcile

        reconcile(engine, settings)
    return engine


def open_database(settings: Settings) -> Engine:
    """The database, its schema made or upgraded; measurements not reconciled yet."""
    from monitor.store.database import make_engine, prepare

    engine = make_engine(settings.file.database, settings.base_dir)
    prepare(engine)
    return engine


def _sources(settings: Settings, names: Sequence[str]) -> list[str]:
    known = [s.name for s in settings.sources]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(
            f"no source named {', '.join(unknown)} (configured: {', '.join(known) or 'none'})"
        )
    return list(names) or [s.name for s in settings.sources if s.enabled]


def poll(settings: Settings, names: Sequence[str]) -> int:
    """Poll the chosen sources one after the other. The first source's reading child is forked
    before the store's modules are imported (SQLAlchemy with them: they are most of a poll's
    start-up), and given its cursor at once where a SQLite file holds it (`peek_cursor`), so
    that it reads while this process opens the store; the store's own cursor then decides."""
    from monitor.config_file import check_database
    from monitor.store.cursors import peek_cursor
    from monitor.store.reader_process import can_fork, poll_in_child

    chosen = _sources(settings, names)
    in_child = can_fork()
    failed = 0
    with ExitStack() as stack:
        now = utcnow()
        # Each source is read in a child process while this one stores (the second core).
        first = settings.source(chosen[0]) if in_child and chosen else None
        reading, early, first_child = None, None, ExitStack()
        stack.enter_context(first_child)
        if first is not None:
            early = peek_cursor(settings.file.database, settings.base_dir, first.name)
            reading = first_child.enter_context(poll_in_child(settings, first, now))
            if early is not None:
                reading.give(early[0])
        with start_up():
            check_database(settings)  # left out when the settings were loaded (dispatch)
            engine = open_database(settings)
            stack.callback(engine.dispose)  # as `dispatch` does for the other commands
            if reading is not None and first is not None:
                from monitor.store.cursors import stored_cursor

                cursor = stored_cursor(engine, first.name)
                if early is None:
                    reading.give(cursor)
                elif early[0] != cursor:  # moved meanwhile, or another file: the store's
                    first_child.close()
                    reading = None
            # The rest of the store, while the child reads the first batch.
            from monitor.store.ingest import poll_source, reconcile

        reconcile(engine, settings)
        for index, name in enumerate(chosen):
            source = settings.source(name)
            if index:  # the next sources' children start as each poll begins
                now, reading = utcnow(), None
            result = poll_source(
                engine, settings, source, now=now, in_child=in_child, reading=reading
            )
            print(line(result.summary(), LOG_LIMIT))
            failed += not result.ok
    return 1 if failed else 0


def import_files(engine: Engine, settings: Settings, name: str, paths: list[Path]) -> int:
    from connectors import connector_class
    from monitor.store.ingest import import_paths

    _sources(settings, [name])
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    source = settings.source(name)
    if not connector_class(source.kind).imports_files:
        raise UsageError(f"source {name} ({source.kind}) does not read files: nothing to import")
    if not sys.stderr.isatty():  # rich would draw nothing: spare its import
        result = import_paths(engine, settings, source, paths, now=utcnow())
        print(line(result.summary(), LOG_LIMIT))
        return 0 if result.ok else 1
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    # Rich draws on stderr, transient; stdout gets the one-line summary either way. It redraws
    # after each stored batch (several a second) rather than from a thread of its own: a process
    # with one thread reads the files in a child process (monitor.store.reader_process).
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        auto_refresh=False,
    ) as bar:
        task = bar.add_task(f"importing into {name}", total=None, counts="")

        def progress(result: PollResult) -> None:
            counts = f"{result.messages:,} messages, {result.calls:,} calls"
            bar.update(task, counts=f"{counts}, {result.rejected:,} rejected", refresh=True)

        result = import_paths(engine, settings, source, paths, now=utcnow(), progress=progress)
    print(line(result.summary(), LOG_LIMIT))
    return 0 if result.ok else 1


def parse_moment(value: str, settings: Settings, what: str) -> datetime:
    """A date (midnight in the configured zone) or an ISO 8601 time (naive: configured zone)."""
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), settings.timezone)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{what}: expected a date like 2026-11-20 or an ISO time, got {value!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=settings.timezone)


def password_hash() -> int:
    """Print the hash of a password for `status.users`: typed twice without echo on a terminal,
    else the first line of stdin (`printf %s "$PASSWORD" | support-monitor password-hash`)."""
    import getpass

    from monitor.publish.passwords import make_hash

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise UsageError("the passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError("an empty password")
    print(make_hash(password))
    return 0


def report(engine: Engine, settings: Settings, args: argparse.Namespace) -> int:
    now = utcnow()
    today = datetime.combine(now.astimezone(settings.timezone).date(), time(), settings.timezone)
    since = (
        parse_moment(args.since, settings, "--since") if args.since else today - timedelta(days=6)
    )
    until = parse_moment(args.until, settings, "--until") if args.until else now
    # Show the period in the zone the days are counted in, whatever zone the user typed.
    since, until = since.astimezone(settings.timezone), until.astimezone(settings.timezone)
    if until <= since:
        raise UsageError("--until must be after --since")
    if args.by or args.items or args.source or args.team or args.verdict:
        return explained_report(engine, settings, args, since, until, now)
    from monitor.publish.report import is_empty, render_csv, render_json, render_table
    from monitor.store.figures import all_figures, latest_activity

    figures = all_figures(engine, settings, since, until, now)
    render = {"table": render_table, "json": render_json, "csv": render_csv}[args.format]
    sys.stdout.write(block(render(figures)))
    if args.format == "table" and is_empty(figures):
        # An empty week usually means the data is older (a backfill, the demo): say where it is.
        latest = latest_activity(engine, settings)
        if latest is not None and latest < since:
            day = latest.astimezone(settings.timezone).date()
            week = f"--since {day - timedelta(days=6)} --until {day + timedelta(days=1)}"
            print(f"\nNothing in this period; the latest activity stored is on {day}: try {week}")
    return 0


def explained_report(
    engine: Engine,
    settings: Settings,
    args: argparse.Namespace,
    since: datetime,
    until: datetime,
    now: datetime,
) -> int:
    """`report --by …` (the figures per group) or `report --items` (every item behind them),
    both from one reading of the period (monitor.store.breakdown)."""
    from monitor.measure.items import VERDICTS
    from monitor.publish import report_groups, report_items
    from monitor.store.breakdown import DIMENSIONS, breakdown, read_period

    by = [d.strip() for value in args.by or () for d in value.split(",") if d.strip()]
    unknown = [d for d in by if d not in DIMENSIONS]
    if unknown:
        raise UsageError(f"--by {unknown[0]}: expected one of {', '.join(DIMENSIONS)}")
    if "agent" in by and not settings.file.reports.agents:
        raise UsageError(
            "--by agent: figures per agent are off; set `reports.agents: true` to report them"
        )
    if args.items and by:
        raise UsageError("--items lists items and --by groups them: ask for one at a time")
    verdicts = {v.strip().lower().replace("-", "_").replace(" ", "_") for v in args.verdict or ()}
    if verdicts and not args.items:
        raise UsageError("--verdict filters the items: use it with --items")
    if wrong := sorted(verdicts - set(VERDICTS)):
        raise UsageError(f"--verdict {wrong[0]}: expected one of {', '.join(VERDICTS)}")
    sources = set(args.source or ())
    _sources(settings, sorted(sources))  # a usage error naming the unknown ones
    teams = set(args.team or ())
    if missing := sorted(teams - set(settings.file.teams)):
        known = ", ".join(sorted(settings.file.teams)) or "none configured"
        raise UsageError(f"--team {missing[0]}: no such team (teams: {known})")
    period = read_period(engine, settings, since, until, now)
    title = f"Period {since:%Y-%m-%d %H:%M %Z} – {until:%Y-%m-%d %H:%M %Z}"
    if args.items:
        options = report_items.Options.for_settings(
            settings,
            sources=frozenset(sources),
            teams=frozenset(teams),
            verdicts=frozenset(verdicts),
        )
        rows = report_items.item_rows(period, options)
        if args.format == "json":
            sys.stdout.write(block(report_items.render_json(rows) + "\n"))
        elif args.format == "csv":
            sys.stdout.write(block(report_items.render_csv(rows)))
        else:
            sys.stdout.write(block(report_items.render_table(rows, title)))
        return 0
    groups = breakdown(period.only(sources, teams), by or ["source"])
    dimensions = by or ["source"]
    if args.format == "json":
        sys.stdout.write(block(report_groups.render_json(dimensions, groups) + "\n"))
    elif args.format == "csv":
        sys.stdout.write(block(report_groups.render_csv(dimensions, groups)))
    else:
        sys.stdout.write(block(report_groups.render_table(dimensions, groups, title)))
    return 0


def alerts(engine: Engine, settings: Settings, *, dry_run: bool) -> int:
    """One evaluation: a line per transition and per notice, then a summary line. Exit 1 when a
    notification could not be delivered (it is retried by the next evaluation or by `run`).
    A dry run prints each notification as each notifier would send it: an e-mail's subject
    and text, a webhook's text."""
    from monitor.publish.alerts.run import run_once, summaries

    now = utcnow()
    outcome = run_once(engine, settings, now, dry_run=dry_run)
    # Summaries name inquiries and callers: outsiders' text, printed as one line each.
    moving = [change for change in outcome.changes if change.kind != "keep"]
    for change, summary in zip(moving, summaries(engine, settings, moving, now), strict=True):
        state = change.old if change.kind == "resolve" else change.finding
        assert state is not None
        word = "firing" if change.kind == "fire" else "resolved"
        print(line(f"{word:<9} {state.rule} {state.severity}: {summary}", LOG_LIMIT))
    for told in outcome.told:
        body = told.body
        if dry_run:
            for sent in told.sends:
                print(line(f"would send to {sent.to}:", LOG_LIMIT))
                for said in _as_sent(settings, sent.kind, sent.notify, sent.body):
                    print(line(f"    {said}", LOG_LIMIT))
            if not told.sends:
                said = f"[{body['severity']} {body['status']}] {body['summary']}"
                print(line(f"would send {said} -> no notifier configured", LOG_LIMIT))
            continue
        where = ", ".join(told.to) or "no notifier configured"
        said = f"{'notify':<9} [{body['severity']} {body['status']}] {body['summary']} -> {where}"
        print(line(said, LOG_LIMIT))
    for notice in outcome.held:
        state = notice.state
        print(line(f"{'held':<9} {notice.event} {state.rule} {state.severity} (quiet hours)"))
    for error in outcome.errors:
        print(line(f"{'error':<9} {error}", LOG_LIMIT))
    counts = outcome.deliveries
    if dry_run:
        print(f"alerts: {outcome.firing} firing; dry run, nothing stored or sent")
        return 0
    print(
        f"alerts: {outcome.firing} firing; notifications {counts['sent']} sent, "
        f"{counts['pending']} to retry, {counts['failed']} failed"
    )
    return 1 if counts["pending"] or counts["failed"] else 0


def _as_sent(settings: Settings, kind: str, index: int, body: dict[str, object]) -> list[str]:
    """The lines a person reads of a notification: an e-mail's subject and plain text, a
    webhook's `text` (what a chat shows)."""
    from monitor.publish.notifiers import notifier_for

    return notifier_for(settings, index, kind).readable(body)


def purge(engine: Engine, settings: Settings, *, dry_run: bool) -> int:
    """One purge (monitor.store.retention): a line per table, then what was done."""
    from monitor.store.retention import horizon
    from monitor.store.retention import purge as run_purge

    now = utcnow()
    cutoff = horizon(now, settings)
    if cutoff is None:
        print("purge: no `retention` set; everything is kept")
        return 0
    counts = run_purge(engine, settings, now, dry_run=dry_run)
    for table, count in counts.items():
        print(f"{table:<17} {count:>9,}")
    verb = "would delete" if dry_run else "deleted"
    print(f"purge: {verb} {sum(counts.values()):,} rows older than {cutoff:%Y-%m-%d %H:%M} UTC")
    return 0


def digest(engine: Engine, settings: Settings, args: argparse.Namespace) -> int:
    """Print the day's digest as text, write its HTML (--preview), or send it once (--send)."""
    from monitor.publish.digest.build import build_digest
    from monitor.publish.digest.mail import render

    now = utcnow()
    today = now.astimezone(settings.timezone).date()
    if args.date is None:
        day = today - timedelta(days=1)
    else:
        try:
            day = date.fromisoformat(args.date)
        except ValueError:
            raise UsageError(
                f"--date: expected a date like 2026-11-19, got {args.date!r}"
            ) from None
    if args.send:
        return send_digest(engine, settings, day, today, now)
    top = settings.file.digest.top if settings.file.digest is not None else 10
    rendered = render(build_digest(engine, settings, day, now, top))
    if args.preview is None:
        sys.stdout.write(block(rendered.text))
        return 0
    try:
        args.preview.write_text(rendered.html, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--preview: cannot write {args.preview} ({exc.strerror})") from None
    print(f"digest {day}: HTML written to {args.preview}")
    return 0


def send_digest(engine: Engine, settings: Settings, day: date, today: date, now: datetime) -> int:
    from monitor.publish import deliveries
    from monitor.publish.digest.mail import claim_digest, deliver_digests, status

    if settings.file.digest is None or not settings.file.digest.to:
        raise UsageError("--send: no recipients; set digest.to (and the smtp section)")
    if day >= today:  # claiming it now would block the complete digest of that day
        raise UsageError(f"--send: {day} is not over yet in {settings.file.timezone}")
    claim_digest(engine, settings, day, now)
    before = status(engine, day)
    deliver_digests(engine, settings, now)
    after = status(engine, day)
    assert before is not None and after is not None  # claimed above, by us or earlier
    if after.status == deliveries.SENT:
        if before.status == deliveries.SENT:
            sent = after.sent_at.astimezone(settings.timezone) if after.sent_at else None
            print(f"digest {day}: already sent{f' at {sent:%Y-%m-%d %H:%M %Z}' if sent else ''}")
        else:
            print(f"digest {day}: sent to {', '.join(settings.file.digest.to)}")
        return 0
    if after.status == deliveries.FAILED:
        print(
            f"digest {day}: failed for good after {after.attempts} attempts: {after.last_error}",
            file=sys.stderr,
        )
    elif after.attempts == before.attempts:  # not due: waiting out the backoff of a failure
        when = (
            after.next_attempt_at.astimezone(settings.timezone) if after.next_attempt_at else None
        )
        print(
            f"digest {day}: not sent yet; next attempt after "
            f"{f'{when:%H:%M:%S %Z}' if when else 'now'} (last error: {after.last_error})",
            file=sys.stderr,
        )
    else:
        print(
            f"digest {day}: not sent: {after.last_error}; kept for a retry "
            "(by `run`, or `digest --send` again)",
            file=sys.stderr,
        )
    return 1
