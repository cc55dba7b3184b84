"""Writes monitor/store/schema.py, the SQLAlchemy Core tables every command uses, from the
SQLModel declarations in monitor.store.tables:

    .venv/bin/python -m monitor.store.schema_writer

Run it after changing tables.py; tests/store/test_schema.py fails until schema.py is what this
writes, and checks that both describe the same tables, columns, defaults, constraints and
indexes and create the same DDL on SQLite and PostgreSQL.

Why a written copy: building the SQLModel classes imports SQLAlchemy's ORM and runs pydantic's
model building for each of them, about a tenth of a second of every command's start-up (a
sixth of `metrics` on an empty site), for tables that every query uses as Core `Table`s only.
The copy is made from the tables' own metadata, so what SQLModel makes of a declaration (a
`str` is a VARCHAR, an `int | None` id an autoincrementing primary key, a field's default a
column default) is what the copy says. Anything this writer does not know how to say (a type,
a default, a constraint of another kind) stops it with the table and column named, rather than
being left out.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.sql.elements import (
    BinaryExpression,
    ColumnClause,
    ColumnElement,
    False_,
    TextClause,
    True_,
)
from sqlalchemy.sql.operators import eq

from monitor.store.instants import Instant

TARGET = Path(__file__).with_name("schema.py")

HEADER = '''"""The tables as SQLAlchemy Core, which is all any query uses of them: written by
`python -m monitor.store.schema_writer` from the SQLModel declarations in monitor.store.tables
(the one place the schema is declared and explained). Do not edit: change tables.py and run
that command; tests/store/test_schema.py fails until this file is what it writes.

Every command imports this module rather than tables.py: building the SQLModel classes imports
SQLAlchemy's ORM and pydantic's model building, about a tenth of a second of each command's
start-up.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import {imports}

from monitor.store.instants import Instant
'''


def _type(table: Table, column: Column[Any]) -> str:
    """The Core type of a column as written; only the plain types tables.py uses."""
    kind = column.type
    # SQLModel's AutoString is a VARCHAR everywhere but on MySQL, which this project does not
    # support: Core's String says the same on SQLite and PostgreSQL.
    if type(kind).__name__ == "AutoString" or (type(kind) is String and kind.length is None):
        return "String"
    plain = {Integer: "Integer", Float: "Float", Boolean: "Boolean", Instant: "Instant"}
    name = plain.get(type(kind))
    if name is None or repr(kind) != repr(type(kind)()):
        raise SystemExit(f"{table.name}.{column.name}: cannot write the type {kind!r}")
    return name


def _value(value: object, where: str) -> str:
    if isinstance(value, bool | int | float | str) or value is None:
        return repr(value)
    raise SystemExit(f"{where}: cannot write the value {value!r}")


def _column(table: Table, column: Column[Any]) -> str:
    where = f"{table.name}.{column.name}"
    parts = [repr(column.name), _type(table, column)]
    for key in column.foreign_keys:
        parts.append(f"ForeignKey({key.target_fullname!r})")
    if column.primary_key:
        parts.append("primary_key=True")
    elif not column.nullable:
        parts.append("nullable=False")
    if column.autoincrement != "auto":
        parts.append(f"autoincrement={column.autoincrement!r}")
    if column.default is not None:
        default = column.default
        if not default.is_scalar:
            raise SystemExit(f"{where}: cannot write the default {default!r}")
        parts.append(f"default={_value(getattr(default, 'arg', None), where)}")
    if column.server_default is not None:
        arg = getattr(column.server_default, "arg", None)
        if isinstance(arg, False_ | True_):
            parts.append(f"server_default={'true' if isinstance(arg, True_) else 'false'}()")
        elif isinstance(arg, str):
            parts.append(f"server_default={arg!r}")
        else:
            raise SystemExit(f"{where}: cannot write the server default {arg!r}")
    if column.unique or column.comment or column.key != column.name:
        raise SystemExit(f"{where}: cannot write unique, comment or key on a column")
    return f"Column({', '.join(parts)})"


def _index(table: Table, index: Index) -> str:
    parts = [repr(index.name)]
    for expression in index.expressions:
        if not isinstance(expression, Column) or expression.table is not table:
            raise SystemExit(f"{table.name} {index.name}: cannot write {expression!r}")
        parts.append(repr(expression.name))
    if index.unique:
        parts.append("unique=True")
    for key, value in sorted(index.dialect_kwargs.items()):
        if not isinstance(value, TextClause):
            raise SystemExit(f"{table.name} {index.name}: cannot write {key}={value!r}")
        parts.append(f"{key}=text({value.text!r})")
    return f"Index({', '.join(parts)})"


def _table(name: str, table: Table) -> list[str]:
    if table.schema is not None or table.comment or dict(table.dialect_kwargs):
        raise SystemExit(f"{table.name}: cannot write a schema, comment or dialect options")
    lines = [f"{name} = Table(", f"    {table.name!r},", "    METADATA,"]
    lines += [f"    {_column(table, column)}," for column in table.columns]
    for constraint in sorted(table.constraints, key=lambda c: type(c).__name__, reverse=True):
        if isinstance(constraint, PrimaryKeyConstraint | ForeignKeyConstraint):
            continue  # said by the columns' primary_key and ForeignKey
        if not isinstance(constraint, UniqueConstraint) or constraint.name is not None:
            raise SystemExit(f"{table.name}: cannot write the constraint {constraint!r}")
        columns = ", ".join(repr(c.name) for c in constraint.columns)
        lines.append(f"    UniqueConstraint({columns}),")
    lines += [f"    {_index(table, index)}," for index in sorted(table.indexes, key=_name)]
    lines.append(")")
    return lines


def _name(index: Index) -> str:
    return index.name or ""


def _condition(name: str, value: ColumnElement[Any], tables: dict[int, str]) -> str:
    """A named condition of tables.py (a partial index's WHERE in its very SQL)."""
    if isinstance(value, ColumnClause) and value.is_literal:
        return f"{name}: Any = literal_column({value.name!r})"
    if (
        isinstance(value, BinaryExpression)
        and value.operator is eq
        and isinstance(value.left, Column)
        and id(value.left.table) in tables
        and isinstance(value.right, ColumnClause)
        and value.right.is_literal
    ):
        left = f"{tables[id(value.left.table)]}.c.{value.left.name}"
        return f"{name}: Any = {left} == literal_column({value.right.name!r})"
    raise SystemExit(f"{name}: cannot write the condition {value!r}")


def source() -> str:
    """The text of schema.py for the tables declared now, laid out by `ruff format` (as `make
    lint` wants every file)."""
    from monitor.store import tables

    names = {id(v): k for k, v in vars(tables).items() if k.isupper() and isinstance(v, Table)}
    metadata = _metadata(tables)
    missing = [t.name for t in metadata.tables.values() if id(t) not in names]
    if missing:
        raise SystemExit(f"tables.py names no constant for the tables {', '.join(missing)}")
    conventions = dict(metadata.naming_convention)
    body = [
        f"SCHEMA_VERSION = {tables.SCHEMA_VERSION}",
        f"METADATA = MetaData(naming_convention={conventions!r})",
        "",
    ]
    for table in metadata.tables.values():
        body += ["", *_table(names[id(table)], table), ""]
    conditions = [(k, v) for k, v in vars(tables).items() if isinstance(v, ColumnElement)]
    body += ["", *(_condition(name, value, names) for name, value in conditions)]
    text = "\n".join(body)
    # What the body uses of SQLAlchemy, in isort's order (constants, classes, functions).
    # (a word outside quotes: a column may be called `text`).
    used = {w for w in _SQLALCHEMY if re.search(rf'(?<!["\w]){w}(?!["\w])', text)}
    used |= {"MetaData", "Table"}
    imports = "(\n" + "".join(f"    {word},\n" for word in sorted(used, key=_isort)) + ")"
    return _formatted(HEADER.format(imports=imports) + "\n" + text + "\n")


_SQLALCHEMY = (
    "Boolean",
    "Column",
    "Float",
    "ForeignKey",
    "Index",
    "Integer",
    "String",
    "UniqueConstraint",
    "false",
    "literal_column",
    "text",
    "true",
)


def _isort(word: str) -> tuple[bool, str]:
    return (word[0].islower(), word)


def _formatted(text: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(TARGET), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"ruff format failed: {done.stderr.strip()}")
    return done.stdout


def _metadata(tables: Any) -> MetaData:
    found = {id(v.metadata): v.metadata for v in vars(tables).values() if isinstance(v, Table)}
    if len(found) != 1:
        raise SystemExit("tables.py's tables are not all in one MetaData")
    return next(iter(found.values()))


def main() -> None:
    text = source()
    if TARGET.exists() and TARGET.read_text(encoding="utf-8") == text:
        print(f"{TARGET} is up to date", file=sys.stderr)  # noqa: T201
        return
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}", file=sys.stderr)  # noqa: T201


if __name__ == "__main__":
    main()
