"""A source's batches read in a child process while this one stores them: the second core.

Storing a batch is mostly SQLite and our own Python; reading one is parsing (a queue_log's
million lines are about as much CPU as storing their calls). Threads cannot overlap the two: the
sqlite3 module holds the GIL for each row it binds, and the parser holds it for everything else.
So an import reads in a forked child, which sends each batch, pickled whole with the cursor that
covers it, through a pipe; the parent stores it as it would a batch read here, in its own
transaction with that cursor. Order, the cursor+rows-in-one-transaction rule and what a stop
loses (at most the batch in the pipe, whose cursor is not saved) are those of reading inline.

A batch crosses as plain values (`_wire`, `_unwired`): its calls as one flat list of their
fields, its messages as tuples of their fields, rebuilt here without running their
constructors' checks again (they ran in the child), and what the child prepared for storing
it, if anything (`monitor.store.batches.prepare`: an import's callback requests cross as the
rows and inquiries they make, not as messages).
Pickling the events themselves cost more than half of what reading in the child saved:
a CallEvent is rebuilt through a Python call per call, a frozen dataclass's `__setstate__`
loops over its fields per message. A batch's calls come before its messages after the trip;
storing a batch does not depend on the order between the two (monitor.store.batches).

The pipe holds up to a megabyte (`_PIPE_BYTES`, Linux's default ceiling for a pipe; 64 kB
otherwise): the child blocks on sending once it is full, until this process takes a batch, so
memory stays at a few batches whatever the file. A megabyte is about three batches of 2,000
e-mail headers, which a poll's child reads while this process is still opening the store.
A source's error reaches this process as the same exception (class, message, `permanent`),
raised where the batch would have been; a child that dies without a word (killed, out of
memory) is a transient source error.

A poll's child is forked before the cursor is known (`poll_in_child`, `reading_child`): its
connector gets ready without it (`Connector.fetch_late`: an IMAP session connects, logs in and
lists the folders) while this process opens the store, then hands it the cursor through a
second pipe (`Reading.give`): read early from a SQLite file, or from the store once it is open
(monitor.store.cursors). The store's cursor decides, and is stored with the rows of each
batch as before; a child whose parent fails before giving it, or before taking any of its
batches (the store did not open), is killed at once: what it reads is for nobody.

Only a process with no other thread forks (`can_fork`): a thread holding a lock at the fork
(the logging module's, a connection pool's, stderr's) would leave the child's copy locked for
good. `run`'s scheduler and HTTP threads therefore never get here, and its polls read inline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import multiprocessing
import operator
import pickle
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from itertools import chain
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, TypeGuard, cast

from connectors import build_connector
from connectors.base import Batch, ConnectorError
from monitor.errors import OperationError
from monitor.measure.events import (
    EPOCH,
    MICROSECOND,
    CallEvent,
    Event,
    MessageEvent,
    Thread,
    slot_maker,
)

if TYPE_CHECKING:
    from monitor.config import Settings, SourceSettings

# How long a child that was told to stop (its pipe closed) may take to notice before it is
# killed: it notices at its next send, after parsing at most one batch.
_STOP_GRACE_S = 5.0
# What the pipe of batches may hold (F_SETPIPE_SZ; `/proc/sys/fs/pipe-max-size` is 1 MB by
# default): the reading goes on while this process is busy, here or in its start-up.
_PIPE_BYTES = 1 << 20


class ReaderDied(ConnectorError):
    """The reading child ended without sending its last batch or an error (it was killed, or
    ran out of memory): the source was not read to the end. Transient: a retry reads again
    from the last stored cursor."""


def can_fork() -> bool:
    """Whether batches can be read in a forked child: a platform with fork, and no other thread
    in this process (one could hold a lock the child would inherit held)."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


@contextmanager
def read_in_child(read: Callable[[], Iterator[Batch]]) -> Iterator[Iterator[Batch]]:
    """The batches of `read()`, called in a forked child, as they arrive; the caller stores
    each before taking the next. Leaving the block stops the child (it may be parsing one
    batch ahead, which is dropped, cursor and all) and waits for it to end."""
    with reading_child(lambda _given: read()) as child:
        child.given = True  # it waits for nothing
        yield child.batches


class Reading:
    """A child started by `reading_child`: `give` hands it the value its `given()` waits for;
    `batches` are what it read, as they arrive."""

    def __init__(self, giving: Connection, batches: Iterator[Batch]) -> None:
        self._giving = giving
        self.batches = self._taken(batches)
        self.given = False
        self.taken = False  # whether this process began to take batches

    def _taken(self, batches: Iterator[Batch]) -> Iterator[Batch]:
        self.taken = True  # at the first batch asked for
        yield from batches

    def give(self, value: Any) -> None:
        """Hand `value` to the child (once). A child that has ended already (its source
        failed, or it died) is not waiting: what ended it is raised by `batches`."""
        self.given = True
        try:
            self._giving.send_bytes(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            self._giving.close()


@contextmanager
def reading_child(read: Callable[[Callable[[], Any]], Iterator[Batch]]) -> Iterator[Reading]:
    """`read(given)` called in a forked child, started now, before this process has what the
    reading needs (a poll's cursor, read while the child connects): `given()` waits in the
    child for the value this process hands over with `Reading.give`. Leaving the block without
    giving it, or without taking any batch, kills the child at once (what it reads is for
    nobody, and it may be waiting for a server that does not answer); otherwise as
    `read_in_child`."""
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    _widen(sending)
    taking, giving = context.Pipe(duplex=False)
    child = context.Process(
        target=_child,
        args=(read, sending, receiving, taking, giving),
        name="reader",
        daemon=True,
    )
    child.start()
    sending.close()  # this process's copies: the child's ends alone keep the pipes open
    taking.close()
    reading = Reading(giving, _received(receiving, child))
    try:
        yield reading
    finally:
        giving.close()  # a child still waiting for its value wakes up to an end of file: it ends
        receiving.close()  # the child's next send fails: it ends
        if not (reading.given and reading.taken):
            # This process failed before the reading could begin, or before it took anything
            # of it (its store did not open): what the child reads is for nobody, and it may be
            # waiting for a server that does not answer.
            child.kill()
        child.join(_STOP_GRACE_S)
        if child.is_alive():
            child.kill()
            child.join()
        child.close()


def _widen(pipe: Connection) -> None:
    """Let `pipe` hold `_PIPE_BYTES` where the system allows it (Linux); else as it is."""
    setting = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setting is not None:
        with contextlib.suppress(OSError):  # above the system's ceiling, or not a pipe
            fcntl.fcntl(pipe.fileno(), setting, _PIPE_BYTES)


def poll_in_child(
    settings: Settings, source: SourceSettings, now: datetime
) -> AbstractContextManager[Reading]:
    """A child reading `source` for a poll at `now`, started before the cursor is known: its
    connector gets ready (`fetch_late`: an IMAP session connects and logs in) while this
    process opens the store and reads the cursor, which it then hands over with `give`. The
    connector is made in the child too, and an error making it is the poll's, as inline."""
    return reading_child(lambda cursor: build_connector(settings, source).fetch_late(cursor, now))


class _NotGiven(BaseException):
    """In the child: the parent stopped before handing over what the reading waits for. Not an
    Exception: no handler of a source's errors may take it for one."""


def _received(receiving: Connection, child: Any) -> Iterator[Batch]:
    while True:
        try:
            kind, value = pickle.loads(receiving.recv_bytes())
        except EOFError:
            child.join(_STOP_GRACE_S)
            raise ReaderDied(
                f"the process reading the source ended unexpectedly (exit code {child.exitcode})"
            ) from None
        if kind == "batch":
            yield _unwired(value)
        elif kind == "done":
            return
        else:
            raise value


def _child(
    read: Callable[[Callable[[], Any]], Iterator[Batch]],
    sending: Connection,
    receiving: Connection,
    taking: Connection,
    giving: Connection,
) -> None:
    """In the child: send every batch, then "done" or the error that ended the reading."""
    # The child's copies of the parent's ends: open here, they would keep the pipes open after
    # the parent closed its own, and a send (or a wait for the given value) would block for
    # good instead of failing.
    receiving.close()
    giving.close()

    def given() -> Any:
        try:
            return pickle.loads(taking.recv_bytes())
        except EOFError:
            raise _NotGiven from None
        finally:
            taking.close()

    try:
        try:
            for batch in read(given):
                sending.send_bytes(pickle.dumps(("batch", _wire(batch)), pickle.HIGHEST_PROTOCOL))
            message: tuple[str, Any] = ("done", None)
        except (BrokenPipeError, KeyboardInterrupt, _NotGiven):
            # The parent stopped taking batches (or never gave what the reading needs: it
            # failed before), or the user stopped both: say nothing.
            return
        except BaseException as exc:  # noqa: BLE001 - sent to the parent, raised there
            message = ("failed", _portable(exc))
        sending.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))
    except (BrokenPipeError, KeyboardInterrupt):
        return
    finally:
        sending.close()


def _portable(exc: BaseException) -> BaseException:
    """`exc` as it can cross the pipe: itself when it pickles and unpickles to the same class,
        message and `permanent` (our errors do), else a ConnectorError saying what it was (as a poll
    reports an unexpected error: its class and message). An
        error not of our making keeps its traceback from the child as a note, for --debug."""
    if not isinstance(exc, OperationError):
        note = "in the reading process:\n" + "".join(traceback.format_exception(exc)).rstrip()
        try:
            exc.add_note(note)
        except AttributeError:  # a class that refuses attributes
            pass
    try:
        copy = pickle.loads(pickle.dumps(exc, pickle.HIGHEST_PROTOCOL))
    except Exception:  # noqa: BLE001 - a class that cannot be rebuilt from its pickle
        copy = None
    same = (
        type(copy) is type(exc)
        and str(copy) == str(exc)
        and getattr(copy, "permanent", None) == getattr(exc, "permanent", None)
    )
    if isinstance(copy, BaseException) and same:
        return copy
    permanent = bool(getattr(exc, "permanent", False))
    return ConnectorError(f"{type(exc).__name__}: {exc}", permanent=permanent)


# A message's fields but its time and its thread: the time crosses as whole microseconds (a
# datetime pickles through its __reduce_ex__, four fifths of a message's pickling), the thread
# as a tuple of its own fields (a frozen dataclass with slots unpickles through
# `dataclasses.fields`, a third of the trip's cost).
_MESSAGE_FIELDS = tuple(
    f.name for f in dataclasses.fields(MessageEvent) if f.name not in ("at", "thread")
)
_THREAD_FIELDS = tuple(f.name for f in dataclasses.fields(Thread))
_message_fields = operator.attrgetter(*_MESSAGE_FIELDS)
_thread_fields = operator.attrgetter(*_THREAD_FIELDS)
# A frozen dataclass with slots: each field is set through its slot, as its __init__ would.
_make_message = slot_maker(MessageEvent, (*_MESSAGE_FIELDS, "at", "thread"))
_make_thread = slot_maker(Thread)
_at = operator.attrgetter("at")
_call = functools.partial(tuple.__new__, CallEvent)
_CALL_FIELDS = len(CallEvent._fields)
# isinstance(e, CallEvent) and isinstance(e, MessageEvent), called by `filter` in C.
_is_call = cast("Callable[[Event], TypeGuard[CallEvent]]", CallEvent.__instancecheck__)
_is_message = cast("Callable[[Event], TypeGuard[MessageEvent]]", MessageEvent.__instancecheck__)


def _wire(batch: Batch) -> tuple[Any, ...]:
    """A batch as plain tuples, which pickle (and unpickle) in C: its calls' fields, its
    messages' fields with their threads' fields, then the cursor, rejections, skip counts and
    remarks ("a guess from the numbers", which `poll` must say) as they are."""
    # The calls' fields one after the other, in one flat list: made and pickled in C, with
    # no tuple per call (a queue_log import sends a million calls).
    calls = list(chain.from_iterable(filter(_is_call, batch.events)))
    messages = [
        (
            _message_fields(e),
            (_at(e) - EPOCH) // MICROSECOND,
            None if e.thread is None else _thread_fields(e.thread),
        )
        for e in filter(_is_message, batch.events)
    ]
    prepared = getattr(batch, "prepared", None)  # a PreparedBatch's
    return calls, messages, batch.cursor, batch.rejected, batch.skipped, batch.noted, prepared


def _unwired(wired: tuple[Any, ...]) -> Batch:
    """The batch `_wire` sent: its events rebuilt as they were, without checking again."""
    calls, messages, cursor, rejected, skipped, noted, prepared = wired
    events: list[Event] = list(map(_call, zip(*[iter(calls)] * _CALL_FIELDS, strict=True)))
    for values, at, thread_values in messages:
        thread = None if thread_values is None else _make_thread(*thread_values)
        # (from_micros(at), inlined)
        events.append(_make_message(*values, EPOCH + timedelta(0, 0, at), thread))
    if prepared is not None:
        from monitor.store.batches import PreparedBatch  # imported by then: this is a store

        return PreparedBatch(events, cursor, rejected, skipped, noted, prepared=prepared)
    return Batch(events, cursor, rejected, skipped, noted)
