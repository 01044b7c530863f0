"""Command line: import audit exports and load the demo trail (`python cli.py --help`)."""

import asyncio
from pathlib import Path

import typer
from tqdm import tqdm

import alerts
from config import settings
from database import make_store
from demo_data import seed_demo
from ingest import ImportFormatError, import_file
from logs import setup_logging

cli = typer.Typer(help="SIO audit: data management commands.", no_args_is_help=True)


class _Progress:
    """A binary file that advances a progress bar as it is read."""

    def __init__(self, raw, bar: tqdm) -> None:
        self._raw, self._bar = raw, bar

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._bar.update(len(data))
        return data

    def read1(self, n: int = -1) -> bytes:
        data = self._raw.read1(n)
        self._bar.update(len(data))
        return data

    def seek(self, pos: int, whence: int = 0) -> int:
        if pos == 0 and whence == 0:
            self._bar.reset()
        return self._raw.seek(pos, whence)

    def __getattr__(self, name: str):
        return getattr(self._raw, name)


async def _import(path: Path, size: int) -> None:
    store = make_store()
    await store.start()
    try:
        with (
            path.open("rb") as raw,
            tqdm(total=size, unit="B", unit_scale=True, desc=path.name) as bar,
        ):
            result = await import_file(
                store, _Progress(raw, bar), tz=settings.tz, batch_size=settings.IMPORT_BATCH_SIZE
            )
        if settings.ALERTS_ENABLED and result.inserted:
            # The service's schedule holder sends the notifications this run queues.
            run = await alerts.run_detection(store)
            typer.echo(f"{run.alerts_created} new alert(s)")
    finally:
        await store.close()
    typer.echo(f"{result.inserted} inserted, {result.duplicates} duplicates, {len(result.errors)} errors")
    for error in result.errors[:20]:
        typer.echo(f"  line {error.line}: {error.message}")


@cli.command("import")
def import_command(path: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Import a JSON Lines, JSON array or CSV export of UNIFIED_AUDIT_TRAIL."""
    setup_logging("WARNING")
    try:
        asyncio.run(_import(path, path.stat().st_size))
    except ImportFormatError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@cli.command("seed-demo")
def seed_demo_command(
    events: int = typer.Option(settings.DEMO_EVENTS, help="number of events"),
    days: int = typer.Option(settings.DEMO_DAYS, help="days of history, ending now"),
    seed: int = typer.Option(settings.DEMO_SEED, help="random seed"),
) -> None:
    """Generate the demo audit trail ending now and load it."""
    setup_logging("WARNING")

    async def run() -> tuple[int, int]:
        store = make_store()
        await store.start()
        try:
            with tqdm(total=events, unit="ev") as bar:
                return await seed_demo(
                    store, n_events=events, days=days, seed=seed, tz=settings.tz, on_batch=bar.update
                )
        finally:
            await store.close()

    inserted, duplicates = asyncio.run(run())
    typer.echo(f"{inserted} inserted, {duplicates} duplicates")


@cli.command("sync-oracle")
def sync_oracle_command(
    batch_size: int = typer.Option(settings.ORACLE_SYNC_BATCH_SIZE, help="rows per batch"),
    limit: int | None = typer.Option(None, help="rows to read at most in this run"),
    restart: bool = typer.Option(False, help="read from the beginning (stored rows are skipped)"),
) -> None:
    """Copy new UNIFIED_AUDIT_TRAIL rows from Oracle into the audit store (resumable, idempotent)."""
    from oracle_service import OracleConfig, OracleError, OracleService

    setup_logging("WARNING")
    service = OracleService(OracleConfig.from_settings(settings))
    missing = service.config.missing()
    if missing:
        typer.echo(f"error: Oracle is not configured, missing: {', '.join(missing)}", err=True)
        raise typer.Exit(2)

    async def run() -> dict:
        store = make_store()
        await store.start()
        try:
            with tqdm(unit="rows", desc="UNIFIED_AUDIT_TRAIL") as bar:

                def progress(summary: dict) -> None:
                    bar.update(summary["rows_read"] - bar.n)

                return await service.sync_audit(
                    store, batch_size=batch_size, limit=limit, restart=restart, on_batch=progress
                )
        finally:
            await service.close()
            await store.close()

    try:
        summary = asyncio.run(run())
    except OracleError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from None
    typer.echo(
        f"{summary['rows_read']} rows read, {summary['inserted']} inserted, "
        f"{summary['duplicates']} duplicates, {summary['errors']} errors; "
        f"synced up to {summary['last_event_timestamp'] or '-'}"
        + ("" if summary["complete"] else " (limit reached: run again to continue)")
    )


rollups_cli = typer.Typer(help="Rollups: the summaries questions read.", no_args_is_help=True)
cli.add_typer(rollups_cli, name="rollups")


async def _check_rollups(store) -> bool:
    import rollups

    report = await rollups.check(store)
    typer.echo(f"events: {report.events}, counted by the rollups: {report.counted}")
    for line in report.mismatches:
        typer.echo(f"  mismatch: {line}")
    typer.echo("rollups agree with the events" if report.ok else "rollups DISAGREE with the events")
    return report.ok


@rollups_cli.command("rebuild")
def rollups_rebuild_command(
    check: bool = typer.Option(False, "--check", help="then recompute and compare, exit 1 if they differ"),
) -> None:
    """Recompute the rollups and sessions from the events (pause imports meanwhile)."""
    import rollups

    setup_logging("WARNING")

    async def run() -> bool:
        store = make_store()
        await store.start()
        try:
            events = await rollups.rebuild(store)
            typer.echo(f"rollups rebuilt from {events} events")
            return await _check_rollups(store) if check else True
        finally:
            await store.close()

    if not asyncio.run(run()):
        raise typer.Exit(1)


@rollups_cli.command("check")
def rollups_check_command() -> None:
    """Recompute the rollups from the events and compare with the stored ones; exit 1 if they differ."""
    setup_logging("WARNING")

    async def run() -> bool:
        store = make_store()
        await store.start()
        try:
            return await _check_rollups(store)
        finally:
            await store.close()

    if not asyncio.run(run()):
        raise typer.Exit(1)


if __name__ == "__main__":
    cli()
