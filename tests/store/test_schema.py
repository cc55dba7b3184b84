"""The Core tables every command uses (monitor/store/schema.py) are the SQLModel declarations of
monitor/store/tables.py, written out by monitor.store.schema_writer: the same tables, columns,
defaults, constraints and indexes, and the same DDL on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Column, MetaData, Table, UniqueConstraint
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import SQLModel

import monitor.store.tables  # declares the SQLModel tables
from monitor.store import schema, schema_writer
from monitor.store.database import _postgresql_partial_indexes


def test_schema_py_is_what_the_writer_writes_from_tables_py() -> None:
    written = schema_writer.TARGET.read_text(encoding="utf-8")
    assert written == schema_writer.source(), (
        "monitor/store/schema.py is out of date with tables.py: "
        "run `.venv/bin/python -m monitor.store.schema_writer`"
    )


def _type(column: Column[Any]) -> str:
    name = type(column.type).__name__
    return "String" if name == "AutoString" else name  # a VARCHAR but on MySQL


def _default(column: Column[Any]) -> object:
    return getattr(column.default, "arg", None)


def _describe(metadata: MetaData) -> dict[str, Any]:
    described: dict[str, Any] = {}
    for table in metadata.tables.values():
        columns = [
            (
                c.name,
                _type(c),
                c.nullable,
                c.primary_key,
                c.autoincrement,
                _default(c),
                str(c.server_default.arg) if c.server_default is not None else None,  # type: ignore[attr-defined]
                sorted(k.target_fullname for k in c.foreign_keys),
            )
            for c in table.columns
        ]
        uniques = sorted(
            tuple(c.name for c in u.columns)
            for u in table.constraints
            if isinstance(u, UniqueConstraint)
        )
        indexes = sorted(
            (
                i.name,
                tuple(c.name for c in i.columns),
                i.unique,
                # PostgreSQL's WHERE is copied from SQLite's when a PostgreSQL database is
                # opened (monitor.store.database): what is declared is SQLite's.
                {k: str(v) for k, v in i.dialect_kwargs.items() if k.startswith("sqlite_")},
            )
            for i in table.indexes
        )
        described[table.name] = {"columns": columns, "unique": uniques, "indexes": indexes}
    return described


def test_the_core_tables_are_the_sqlmodel_tables_column_by_column() -> None:
    assert _describe(schema.METADATA) == _describe(SQLModel.metadata)
    assert schema.SCHEMA_VERSION == monitor.store.tables.SCHEMA_VERSION
    assert schema.METADATA.naming_convention == SQLModel.metadata.naming_convention


def _ddl(table: Table, dialect: Any) -> list[str]:
    made = [str(CreateTable(table).compile(dialect=dialect))]
    made += sorted(str(CreateIndex(index).compile(dialect=dialect)) for index in table.indexes)
    return made


@pytest.mark.parametrize(
    "dialect", [sqlite.dialect(), postgresql.dialect()], ids=["sqlite", "postgresql"]
)
def test_the_core_tables_create_the_same_ddl_as_the_sqlmodel_tables(dialect: Any) -> None:
    # As a PostgreSQL database is opened: the partial indexes get their WHERE there too.
    _postgresql_partial_indexes()
    for table in SQLModel.metadata.tables.values():
        for index in table.indexes:
            index.dialect_options["postgresql"]["where"] = index.dialect_options["sqlite"]["where"]
    ours = {name: _ddl(table, dialect) for name, table in schema.METADATA.tables.items()}
    theirs = {name: _ddl(table, dialect) for name, table in SQLModel.metadata.tables.items()}
    assert list(ours) == list(theirs)  # the same tables, in the same order
    assert ours == theirs


def test_the_named_conditions_are_the_same_sql() -> None:
    def conditions(module: Any) -> dict[str, str]:
        return {
            name: str(value.compile(dialect=sqlite.dialect()))
            for name, value in vars(module).items()
            if isinstance(value, ColumnElement)
        }

    assert conditions(schema) == conditions(monitor.store.tables)
    assert "WAITING_CALL" in conditions(schema)
