"""The ``gridcity`` command: ``db upgrade``, ``serve``, ``users create``, ``demo``, ``evaluate`` ..."""

from __future__ import annotations

import click

from gridcity.roles import Role


@click.group()
def main() -> None:
    """gridcity — digital urban management (数字化城管)."""


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create or migrate the schema of the configured database."""
    from gridcity import migrate  # noqa: PLC0415
    from gridcity.database import make_engine  # noqa: PLC0415
    from gridcity.settings import get_settings  # noqa: PLC0415

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url())
    migrate.upgrade(engine, revision)
    click.echo(f"database at {revision}: {engine.url.render_as_string(hide_password=True)}")


@main.group()
def users() -> None:
    """Logins."""


@users.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--name", "display_name", default=None)
@click.option("--department", "department_code", default=None, help="Department code (department staff).")
def users_create(
    username: str, role: str, password: str, display_name: str | None, department_code: str | None
) -> None:
    """Create a login."""
    from sqlalchemy import select  # noqa: PLC0415

    from gridcity import org  # noqa: PLC0415
    from gridcity.errors import GridCityError  # noqa: PLC0415

    with _session() as session:
        dept_id = None
        if department_code:
            dept_id = session.scalars(select(org.Department.id).where(org.Department.code == department_code)).first()
            if dept_id is None:
                raise click.ClickException(f"unknown department {department_code}")
        try:
            user = org.create_user(
                session,
                username=username,
                password=password,
                role=Role(role),
                display_name=display_name,
                department_id=dept_id,
            )
        except GridCityError as exc:
            raise click.ClickException(f"{exc.code}: {exc.message}") from exc
        click.echo(f"created user {user.username} ({user.role}) id={user.id}")


@main.command()
@click.option("--scale", default=None, type=float, help="City scale for the full demo city (1 = Baoji).")
@click.option("--small", is_flag=True, help="Only the demo organisation (departments and logins).")
def demo(scale: float | None, small: bool) -> None:
    """Load the demo city and one login per role (idempotent; migrates the database first)."""
    from gridcity.root import demo as demo_mod  # noqa: PLC0415

    click.get_current_context().invoke(db_upgrade)
    with _session() as session:
        logins = demo_mod.load_demo(session, scale=scale, small=small, echo=click.echo)
    demo_mod.print_logins(logins, echo=click.echo)


SHUTDOWN_GRACE_SECONDS = 20


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
@click.option("--demo/--no-demo", "with_demo", default=False, help="Load the demo city first.")
def serve(host: str, port: int, workers: int, with_demo: bool) -> None:
    """Run the web server (migrates the database first)."""
    import uvicorn  # noqa: PLC0415

    ctx = click.get_current_context()
    ctx.invoke(db_upgrade)
    if with_demo:
        ctx.invoke(demo)
    click.echo(f"gridcity is running at http://{host}:{port}/  (API docs: http://{host}:{port}/docs)")
    # SIGTERM stops accepting and drains the requests in flight; one that is still running after the grace
    # period is cancelled, so a stuck request can never keep the process from stopping.
    uvicorn.run(
        "gridcity.asgi:app",
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )


def case_pipeline():  # type: ignore[no-untyped-def]
    """The case pipeline of CLI commands that act on cases: the app's subscribers, with the configured settings."""
    from casework.rules import load_rules  # noqa: PLC0415
    from gridcity.root import wiring  # noqa: PLC0415
    from gridcity.settings import get_settings  # noqa: PLC0415

    settings = get_settings()
    return wiring.case_pipeline(settings, load_rules(settings.city_dir))


class _session:  # noqa: N801
    """A CLI unit of work on the configured database (commit on success)."""

    def __enter__(self):  # type: ignore[no-untyped-def]
        from gridcity.database import make_engine, make_session_factory  # noqa: PLC0415
        from gridcity.root.metadata import all_metadata  # noqa: PLC0415
        from gridcity.settings import get_settings  # noqa: PLC0415

        all_metadata()
        settings = get_settings()
        self.engine = make_engine(settings.resolved_database_url())
        self.session = make_session_factory(self.engine)()
        self.session.begin()
        return self.session

    def __exit__(self, exc_type, exc, tb):  # type: ignore[no-untyped-def]
        if exc_type is None:
            self.session.commit()
        else:
            self.session.rollback()
        self.session.close()
        self.engine.dispose()
        return False


@main.group("evaluate", invoke_without_command=True)
@click.option("--period", default=None, help="2026-10 | 2026-Q4 | 2026 | 2026-W43 | 2026-10-01..2026-10-15")
@click.option(
    "--subject",
    default="department",
    show_default=True,
    help="department | grid | community | street | district | inspector | acceptor | shift_leader | dispatcher",
)
@click.option("--version", "version", default=None, help="Indicator-set version (default: the one in effect).")
@click.option("--publish", is_flag=True, help="Freeze the period's results of every subject type.")
@click.pass_context
def evaluate(ctx: click.Context, period: str | None, subject: str, version: str | None, publish: bool) -> None:
    """综合评价: print a ranking (and optionally publish the period)."""
    if ctx.invoked_subcommand is not None:
        return
    if not period:
        raise click.UsageError("--period is required (e.g. --period 2026-10)")
    from casework.rules import load_rules  # noqa: PLC0415
    from evaluation import service as evaluation_service  # noqa: PLC0415
    from gridcity.errors import GridCityError  # noqa: PLC0415
    from gridcity.settings import get_settings  # noqa: PLC0415

    city_dir = get_settings().city_dir
    tz = load_rules(city_dir).calendar.timezone
    with _session() as session:
        try:
            ranking = evaluation_service.compute(
                session, period=period, subject_type=subject, indicator_version=version, tz=tz, city_dir=city_dir
            )
            click.echo(f"{ranking.subject_type} {ranking.period.label} (indicator set {ranking.version})")
            click.echo(f"{'排名':>4}  {'综合指标值':>8}  等级  名称  标记")
            for row in ranking.rows:
                flags = ",".join(row.flags)
                click.echo(
                    f"{row.rank:>4}{'=' if row.tied else ' '} {row.score.composite!s:>8}  "
                    f"{row.score.grade:^4}  {row.name}  {flags}"
                )
            if publish:
                pub = evaluation_service.publish(
                    session, period=ranking.period, version=ranking.version, city_dir=city_dir
                )
                click.echo(f"published #{pub.id}: {pub.period} under {pub.version}")
        except GridCityError as exc:
            raise click.ClickException(f"{exc.code}: {exc.message}") from exc


@evaluate.command("rebuild-facts")
def evaluate_rebuild_facts() -> None:
    """Recompute the evaluation fact table from the case event log."""
    from casework.rules import load_rules  # noqa: PLC0415
    from evaluation import facts as evaluation_facts  # noqa: PLC0415
    from gridcity.settings import get_settings  # noqa: PLC0415

    rules = load_rules(get_settings().city_dir)
    with _session() as session:
        n = evaluation_facts.rebuild_all(session, rules=rules, echo=click.echo)
    click.echo(f"rebuilt {n} fact rows")


@main.group()
def maintenance() -> None:
    """Housekeeping (the server also runs it every GRIDCITY_MAINTENANCE_INTERVAL_SECONDS)."""


def _maintenance(tasks: tuple[str, ...], **kw: object) -> None:
    from gridcity.database import make_engine, make_session_factory  # noqa: PLC0415
    from gridcity.root.metadata import all_metadata  # noqa: PLC0415
    from gridcity.settings import get_settings  # noqa: PLC0415
    from gridcity.storage import MediaStore  # noqa: PLC0415
    from mobile_api.maintenance import run_maintenance  # noqa: PLC0415

    all_metadata()
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url())
    try:
        report = run_maintenance(make_session_factory(engine), MediaStore(settings.media_dir), tasks=tasks, **kw)  # type: ignore[arg-type]
    finally:
        engine.dispose()
    if not report.ran:
        click.echo("maintenance is running in another process; nothing done")
        return
    if "orphans" in tasks:
        click.echo(f"orphan photos: {report.attachments_removed} attachments, {report.files_removed} files removed")
    if "idempotency" in tasks:
        click.echo(f"idempotency records: {report.idempotency_removed} removed")


@maintenance.command("run")
def maintenance_run() -> None:
    """Every housekeeping job once: orphan photos and idempotency records older than 30 days."""
    _maintenance(("orphans", "idempotency"))


@maintenance.command("clean-orphans")
@click.option(
    "--older-than-hours",
    default=1.0,
    show_default=True,
    type=float,
    help="Only files older than this (a request may be writing newer ones).",
)
def maintenance_clean_orphans(older_than_hours: float) -> None:
    """Remove photos no case refers to (older than a day) and media files without a row."""
    import datetime as dt  # noqa: PLC0415

    _maintenance(("orphans",), orphan_older_than=dt.timedelta(hours=older_than_hours))


@maintenance.command("purge-idempotency")
@click.option("--older-than-days", default=30.0, show_default=True, type=float)
def maintenance_purge_idempotency(older_than_days: float) -> None:
    """Forget phone submissions' idempotency keys older than this."""
    import datetime as dt  # noqa: PLC0415

    _maintenance(("idempotency",), idempotency_older_than=dt.timedelta(days=older_than_days))


@main.group()
def cases() -> None:
    """Case history."""


@cases.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
def cases_import(file: str) -> None:
    """Replay a legacy case history (JSON Lines, one event per line) through the transition table.

    Any error anywhere refuses all of it (line-numbered errors, nothing stored: the cases written as they were
    judged are rolled back). Case keys already imported are skipped, so running it again is harmless.
    """
    import sys  # noqa: PLC0415

    from casework import legacy_import  # noqa: PLC0415
    from casework.rules import load_rules  # noqa: PLC0415
    from evaluation import facts as evaluation_facts  # noqa: PLC0415
    from gridcity.settings import get_settings  # noqa: PLC0415

    rules = load_rules(get_settings().city_dir)
    stream = sys.stdin if file == "-" else open(file, encoding="utf-8")  # noqa: SIM115
    try:
        with _session() as session:
            try:
                result = legacy_import.import_records(
                    session,
                    legacy_import.read_lines(stream),
                    rules=rules,
                    echo=click.echo,
                    after=evaluation_facts.ImportFacts(rules=rules, echo=click.echo),
                )
            except legacy_import.ImportRefused as exc:
                for err in exc.errors:
                    click.echo(f"line {err['line']}: {err['type']}: {err['msg']}", err=True)
                raise click.ClickException(f"{len(exc.errors)} error(s); nothing was imported") from None
            except UnicodeDecodeError:
                raise click.ClickException(
                    f"{file} is not UTF-8 text (e.g. convert a GBK export with: iconv -f GBK -t UTF-8); "
                    "nothing was imported"
                ) from None
    finally:
        if stream is not sys.stdin:
            stream.close()
    rate = result.events / result.seconds if result.seconds else 0.0
    click.echo(
        f"imported {result.cases} cases ({result.events} events, {rate:.0f} events/s); "
        f"{result.skipped_cases} already imported, skipped"
    )


@main.group()
def addresses() -> None:
    """Standard addresses (标准地址: door plates, places, roads)."""


@addresses.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--crs", default=None, help="Coordinate reference system of the file (default WGS84).")
def addresses_import(path: str, crs: str | None) -> None:
    """Import a CSV (code,name,kind,road,number,aliases,lon,lat) or GeoJSON of points; all or nothing."""
    from pathlib import Path  # noqa: PLC0415

    from gis_data import addresses as gis_addresses  # noqa: PLC0415
    from gis_data import readers  # noqa: PLC0415
    from gridcity.errors import GridCityError  # noqa: PLC0415

    data = Path(path).read_bytes()
    try:
        rows = (
            readers.read_geojson(data, crs=crs)
            if path.lower().endswith(("json", "geojson"))
            else readers.read_csv_points(data, crs=crs)
        )
        with _session() as session:
            rep = gis_addresses.load_addresses(session, rows, source=Path(path).name)
    except GridCityError as exc:
        report = exc.extra.get("report") or {}
        for r in [r for r in report.get("rows", []) if r["errors"]][:20]:
            click.echo(f"row {r['row']}: " + "; ".join(e["msg"] for e in r["errors"]), err=True)
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    click.echo(f"addresses: {rep.counts['created']} created, {rep.counts['updated']} replaced")


if __name__ == "__main__":
    main()
