"""What a database error means for a caller: the database is unavailable, a conflict, or a bug.

The drivers disagree on how they say "unavailable": asyncpg raises `OSError` when nothing
listens, a server error with a SQLSTATE when the server refuses or drops the connection, and
its own `InterfaceError` when the socket is gone; SQLAlchemy wraps most of them as
`DBAPIError` and marks the ones it recognises as disconnects (`connection_invalidated`);
sqlite3 names its error codes. Only the conditions listed here are "unavailable" (a 503 the
caller may retry); everything else, a syntax error included, stays a bug. A database that
answers but takes no writes (a standby after a failover, a read-only file) or cannot store
them (a full or failing disk) is unavailable too: waiting for the operator is the remedy.

`Database.session()` raises `CommitFailed` when its commit fails, wrapping the driver's
error; the functions here look through it, so a caller classifies it like any other.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm.exc import StaleDataError

#: SQLSTATE classes and codes that mean the server refused or dropped the connection:
#: 08 connection exception, 53300 too many connections, 57P01 admin shutdown (also
#: `pg_terminate_backend`), 57P02 crash shutdown, 57P03 cannot connect now (starting up,
#: shutting down, in recovery). Any refusal while connecting (a database that takes no
#: connections, an unknown role) is marked a disconnect by the engine's `handle_error` hook.
_UNAVAILABLE_CLASSES = ("08",)
_UNAVAILABLE_CODES = frozenset({"53300", "57P01", "57P02", "57P03"})

#: SQLSTATEs of a server that answers but cannot store a write: 25006 read-only transaction
#: (a standby, `default_transaction_read_only`), 53100 disk full, 58030 I/O error. Not
#: disconnects: the connection itself is fine and stays in the pool.
_CANNOT_WRITE_CODES = frozenset({"25006", "53100", "58030"})

#: SQLSTATEs of a conflict with a concurrent transaction: serialization failure, deadlock.
_CONFLICT_CODES = frozenset({"40001", "40P01"})

#: sqlite3 primary result codes (`sqlite_errorcode & 0xFF`) that mean the file cannot be used
#: right now: BUSY and LOCKED (another writer), READONLY (a read-only file or `mode=ro`),
#: IOERR, FULL (the disk), CANTOPEN.
_SQLITE_READONLY = 8
_SQLITE_REASONS = {
    5: "the database is locked by another writer",
    6: "the database is locked by another writer",
    8: "the database is read-only",
    10: "a disk I/O error",
    13: "the disk is full",
    14: "the database file cannot be opened",
}
_SQLITE_UNAVAILABLE = frozenset(_SQLITE_REASONS)


class CommitFailed(Exception):
    """A commit the database refused or could not take: nothing of the transaction was saved.

    Raised by `Database.session()` (the driver's error is `cause`, and `__cause__`), so every
    write path reports a failed commit the same way; the API answers it 503, or 409 for a
    conflict (`is_conflict`).
    """

    def __init__(self, cause: Exception) -> None:
        super().__init__(f"commit failed: {type(cause).__name__}")
        self.cause = cause


def _unwrap(exc: BaseException) -> BaseException:
    """The error a failed commit wraps, else `exc` itself."""
    return exc.cause if isinstance(exc, CommitFailed) else exc


def _driver_error(exc: BaseException) -> BaseException | None:
    exc = _unwrap(exc)
    return exc.orig if isinstance(exc, DBAPIError) else exc


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE behind `exc`, when there is one."""
    original = _driver_error(exc)
    code = getattr(original, "sqlstate", None)
    return code if isinstance(code, str) else None


def _sqlite_code(exc: BaseException) -> int | None:
    original = _driver_error(exc)
    code = getattr(original, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def is_disconnect_code(code: str | None) -> bool:
    """Whether a SQLSTATE says the connection was refused or dropped."""
    return code is not None and (
        code.startswith(_UNAVAILABLE_CLASSES) or code in _UNAVAILABLE_CODES
    )


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot be used right now (not a bug in the query)."""
    exc = _unwrap(exc)
    if isinstance(exc, OSError | PoolTimeoutError):  # refused, unreachable, timed out, pool full
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        # SQLAlchemy saw a disconnect (or the engine's handle_error hook judged it one).
        return True
    code = sqlstate(exc)
    if is_disconnect_code(code) or code in _CANNOT_WRITE_CODES:
        return True
    return _sqlite_code(exc) in _SQLITE_UNAVAILABLE


def is_missing_table(exc: BaseException) -> bool:
    """Whether `exc` is a query naming a table the database does not have (yet)."""
    if sqlstate(exc) == "42P01":  # undefined_table
        return True
    original = _driver_error(exc)
    return _sqlite_code(exc) == 1 and str(original).startswith("no such table")


def is_read_only(exc: BaseException) -> bool:
    """Whether `exc` is the database refusing a write because it is read-only."""
    return sqlstate(exc) == "25006" or _sqlite_code(exc) == _SQLITE_READONLY


def is_conflict(exc: BaseException) -> bool:
    """Whether a write lost to a concurrent one (retrying may succeed, or be moot)."""
    exc = _unwrap(exc)
    if isinstance(exc, IntegrityError | StaleDataError):
        return True
    code = sqlstate(exc)
    return code is not None and (code in _CONFLICT_CODES or code.startswith("23"))


def describe(exc: BaseException) -> str:
    """A short reason without driver text (which may name roles, hosts or databases)."""
    exc = _unwrap(exc)
    code = sqlstate(exc)
    if code is not None:
        return f"the server answered SQLSTATE {code}"
    sqlite = _sqlite_code(exc)
    if sqlite is not None:
        return _SQLITE_REASONS.get(sqlite, f"SQLite error {sqlite}")
    if isinstance(exc, TimeoutError | PoolTimeoutError):
        return "no answer in time"
    if isinstance(exc, OSError):
        return f"no connection ({type(exc).__name__})"
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return "the connection was lost"
    return type(exc).__name__
