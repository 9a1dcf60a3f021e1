"""Copy an MLflow backend store into another database: the runs, their metrics, params, tags and
inputs, the experiments and the model registry (registered models, versions, aliases, tags),
e.g. a team's sqlite `mlflow.db` into the PostgreSQL database `scripts/postgres.sh` made.

    copy_store("sqlite:///mlflow.db", "postgresql+psycopg://esgar:...@127.0.0.1:5432/mlflow")

MLflow has no command for it. Both stores have the same tables (MLflow's schema, at the same
revision), so every row is copied as it is, table after table in foreign-key order, in one
transaction of the destination: all or nothing. The destination must be new (MLflow's tables
with its Default experiment only, or no tables: they are created). The source is only read.
Artifacts are not moved: each run keeps its `artifact_uri` (a path or a server's URL), so they
stay readable where they are.
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from mlflow.store.db import utils as db_utils
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

from esgar.errors import EsgarError

__all__ = ["StoreCopyError", "copy_store", "redact_url", "row_counts"]

CHUNK = 1000
ALEMBIC = "alembic_version"
FRESH = {"experiments": 1, "workspaces": 1}  # the rows of a store MLflow has just made


class StoreCopyError(EsgarError):
    """The stores cannot be copied as asked (not MLflow's, revisions differ, not new...)."""


def redact_url(uri: str) -> str:
    """`uri` with its password shown as ***."""
    try:
        return sa.make_url(uri).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return uri


def row_counts(engine: sa.Engine) -> dict[str, int]:
    """{table: rows} of every table of an MLflow store but alembic's."""
    names = [t for t in sa.inspect(engine).get_table_names() if t != ALEMBIC]
    with engine.connect() as c:
        return {t: c.execute(sa.select(sa.func.count()).select_from(sa.table(t))).scalar_one()
                for t in sorted(names)}


def _revision(engine: sa.Engine, uri: str) -> str:
    try:
        revision = db_utils._get_schema_version(engine)
    except sa.exc.SQLAlchemyError as e:
        raise StoreCopyError(f"{redact_url(uri)}: cannot read it ({str(e).splitlines()[0]})"
                             ) from None
    if revision is None:
        raise StoreCopyError(f"{redact_url(uri)}: not an MLflow store (no schema revision)")
    return revision


def _check_new(counts: dict[str, int], uri: str) -> None:
    """A store MLflow just made holds its Default experiment and default workspace only."""
    held = {t: n for t, n in counts.items() if n > FRESH.get(t, 0)}
    if held:
        rows = ", ".join(f"{t} {n}" for t, n in held.items())
        raise StoreCopyError(f"{redact_url(uri)} is not a new store ({rows} rows): copy into an "
                             "empty database, never over one in use")


def _chunks(rows: sa.CursorResult) -> Iterator[list[dict]]:
    while batch := rows.fetchmany(CHUNK):
        yield [dict(r._mapping) for r in batch]


def _reset_sequences(conn: sa.Connection, tables: list[sa.Table]) -> None:
    """PostgreSQL: every serial column's sequence set past the copied ids."""
    for table in tables:
        for col in table.columns:
            seq = conn.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                               {"t": table.name, "c": col.name}).scalar()
            if seq:
                conn.execute(sa.text(f"SELECT setval(:s, COALESCE((SELECT MAX({col.name}) "
                                     f"FROM {table.name}), 0) + 1, false)"), {"s": seq})


def copy_store(source: str, destination: str) -> dict[str, int]:
    """Copy every row of the MLflow store at `source` into the new store at `destination`
    (SQLAlchemy URLs, as MLflow's `--backend-store-uri`); returns {table: rows copied}.
    StoreCopyError when either is not an MLflow store, their schema revisions differ, or the
    destination already holds runs, models or experiments; nothing is written then."""
    if sa.make_url(source) == sa.make_url(destination):
        raise StoreCopyError("the source and the destination are the same store")
    src = sa.create_engine(source)
    src_revision = _revision(src, source)
    head = db_utils._get_latest_schema_revision()
    if src_revision != head:
        raise StoreCopyError(f"{redact_url(source)} is at MLflow schema {src_revision}, this "
                             f"MLflow's is {head}: back it up, then `mlflow db upgrade "
                             f"{redact_url(source)}`")
    try:
        SqlAlchemyStore(destination, "unused")  # MLflow's tables, created when missing
    except Exception as e:  # MLflow wraps the driver's errors in its own and in SQLAlchemy's
        raise StoreCopyError(f"{redact_url(destination)}: cannot open it as an MLflow store "
                             f"({str(e).strip().splitlines()[0]})") from None
    dst = sa.create_engine(destination)
    if _revision(dst, destination) != head:
        raise StoreCopyError(f"{redact_url(destination)} is not at MLflow schema {head}")
    _check_new(row_counts(dst), destination)
    meta = sa.MetaData()
    meta.reflect(dst)
    tables = [t for t in meta.sorted_tables if t.name != ALEMBIC]
    copied = {}
    with src.connect() as read, dst.begin() as write:
        for table in reversed(tables):  # the Default experiment MLflow made: the source's wins
            write.execute(table.delete())
        for table in tables:
            copied[table.name] = 0
            # the destination's table read from the source: same columns, values converted
            for rows in _chunks(read.execute(sa.select(table))):
                write.execute(table.insert(), rows)
                copied[table.name] += len(rows)
        if dst.dialect.name == "postgresql":
            _reset_sequences(write, tables)
    after = row_counts(dst)
    if {t: n for t, n in after.items() if t in copied} != copied:
        raise StoreCopyError(f"{redact_url(destination)}: the rows there ({after}) are not "
                             f"those copied ({copied})")
    return copied
