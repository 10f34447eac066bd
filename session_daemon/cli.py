"""The C{session-worker} console command: tools for operators, one subcommand each."""

import argparse
import sys

from twisted.internet.defer import maybeDeferred
from twisted.internet.task import react
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)

from session_daemon.migrate import DestinationFailed, Migration
from session_daemon.progress import Progress
from session_daemon.store import StoreError
from session_daemon.store.files import FilesStore
from session_daemon.store.registry import (
    redact,
    source_from_description,
    store_from_description,
)

#: Exit statuses: done and verified; problems found; the command was wrong.
OK, PROBLEMS, USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="session-worker",
        description="Tools for the stores of session-worker.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    migrate = commands.add_parser(
        "migrate",
        help="copy every session from one store to another, then verify",
        description=(
            "Copy every group, instance and key of SOURCE into DEST, then check "
            "that DEST holds every value of SOURCE. SOURCE is only read. Run it "
            "again after an interruption: what is already there is kept."
        ),
        epilog=(
            "Stores: sqlite:PATH, files:FOLDER, postgresql://..., and as a "
            "SOURCE also go-sqlite:FOLDER (the Go worker's per-instance SQLite "
            "files). Exit status: 0 all copied and verified, 1 a problem was "
            "found (each is listed), 2 the command was wrong."
        ),
    )
    migrate.add_argument("source", metavar="SOURCE", help="the store to copy from")
    migrate.add_argument("destination", metavar="DEST", help="the store to copy to")
    migrate.add_argument("--group", help="copy only this group")
    migrate.add_argument(
        "--dry-run",
        action="store_true",
        help="read SOURCE and report what would be copied; write nothing",
    )
    migrate.add_argument(
        "--pool-size",
        type=int,
        default=4,
        help="threads or connections of each store [4]",
    )
    migrate.set_defaults(run=_migrate)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Run the command named in C{argv} (else the process arguments); exit."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    if arguments.command is None:
        parser.print_help(sys.stderr)
        sys.exit(USAGE)
    # Stores log their own failures; an operator at a prompt wants those,
    # not the info lines a running worker writes.
    globalLogBeginner.beginLoggingTo(
        [
            FilteringLogObserver(
                textFileLogObserver(sys.stderr),
                [LogLevelFilterPredicate(defaultLogLevel=LogLevel.error)],
            )
        ],
        redirectStandardIO=False,
    )
    react(lambda reactor: maybeDeferred(arguments.run, arguments))


def _say(text: str) -> None:
    print(text, flush=True)


def _fail(status: int, text: str):
    print(f"session-worker: {text}", file=sys.stderr, flush=True)
    raise SystemExit(status)


async def _migrate(arguments) -> None:
    if arguments.pool_size < 1:
        _fail(USAGE, "--pool-size must be 1 or more")
    try:
        source = source_from_description(arguments.source, arguments.pool_size)
        destination = store_from_description(arguments.destination, arguments.pool_size)
    except ValueError as e:
        _fail(USAGE, str(e))
    if source.description == destination.description:
        _fail(USAGE, "SOURCE and DEST are the same store")
    if isinstance(source, FilesStore):
        # Even temporary files are the source's own business.
        source.clean_at_start = False

    started = []
    try:
        for store in (source,) if arguments.dry_run else (source, destination):
            try:
                store.startService()
            except StoreError as e:
                _fail(PROBLEMS, str(e))
            started.append(store)
        await _run_migration(arguments, source, destination)
    finally:
        for store in reversed(started):
            await maybeDeferred(store.stopService)


async def _run_migration(arguments, source, destination) -> None:
    what = "Checking" if arguments.dry_run else "Migrating"
    _say(f"{what} {source.description} -> {redact(destination.description)}")
    migration = Migration(
        source,
        destination,
        Progress(sys.stdout),
        dry_run=arguments.dry_run,
        group=arguments.group,
    )
    try:
        report = await migration.run()
    except DestinationFailed as e:
        _fail(PROBLEMS, f"{e}; nothing was lost, run the same command again")
    except StoreError as e:
        _fail(PROBLEMS, f"{e}; see the log above")

    for name in report.invalid:
        _say(f"skipped, not JSON: {name}")
    for problem in report.problems:
        _say(f"PROBLEM: {problem}")

    found = (
        f"{_count(report.groups, 'group')}, "
        f"{_count(report.instances, 'instance')} "
        f"({report.empty_instances} without keys), {_count(report.keys, 'key')}"
    )
    skipped = f", {len(report.invalid)} skipped (not JSON)" if report.invalid else ""
    if arguments.dry_run:
        _say(f"Found {found}.")
        _say(
            f"Would copy {_count(report.copied, 'key')}{skipped}. Nothing was written."
        )
    else:
        _say(f"Found {found}.")
        _say(
            f"Copied {_count(report.copied, 'key')}, "
            f"{report.already} already in DEST{skipped}."
        )
        _say(
            f"Verified {_count(report.verified, 'key')}: "
            + (
                "all identical in DEST."
                if not report.problems
                else "see PROBLEM lines."
            )
        )
    if report.problems:
        _fail(PROBLEMS, f"{len(report.problems)} problems, listed above")


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}" + ("" if number == 1 else "s")


if __name__ == "__main__":
    main()
