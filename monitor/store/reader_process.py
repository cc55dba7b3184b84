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

The pipe holds one batch: the child blocks on sending the next until this process takes it, so
memory stays at about two batches whatever the file. A source's error reaches this process as
the same exception (class, message, `permanent`), raised where the batch would have been; a
child that dies without a word (killed, out of memory) is a transient source error.

Only a process with no other thread forks (`can_fork`): a thread holding a lock at the fork
(the logging module's, a connection pool's, stderr's) would leave the child's copy locked for
good. `run`'s scheduler and HTTP threads therefore never get here, and its polls read inline.
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
import operator
import pickle
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from itertools import chain
from multiprocessing.connection import Connection
from typing import Any, TypeGuard, cast

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
from monitor.store.batches import PreparedBatch

# How long a child that was told to stop (its pipe closed) may take to notice before it is
# killed: it notices at its next send, after parsing at most one batch.
_STOP_GRACE_S = 5.0


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
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    child = context.Process(
        target=_child, args=(read, sending, receiving), name="reader", daemon=True
    )
    child.start()
    sending.close()  # this process's copy: the child's end alone keeps the pipe open
    try:
        yield _received(receiving, child)
    finally:
        receiving.close()  # the child's next send fails: it ends
        child.join(_STOP_GRACE_S)
        if child.is_alive():
            child.kill()
            child.join()
        child.close()


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


def _child(read: Callable[[], Iterator[Batch]], sending: Connection, receiving: Connection) -> None:
    """In the child: send every batch, then "done" or the error that ended the reading."""
    # The child's copy of the parent's end: open here, it would keep the pipe readable after the
    # parent closed its own, and a send would block for good instead of failing.
    receiving.close()
    try:
        try:
            for batch in read():
                sending.send_bytes(pickle.dumps(("batch", _wire(batch)), pickle.HIGHEST_PROTOCOL))
            message: tuple[str, Any] = ("done", None)
        except (BrokenPipeError, KeyboardInterrupt):
            return  # the parent stopped taking batches, or the user stopped both: say nothing
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
    prepared = batch.prepared if isinstance(batch, PreparedBatch) else None
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
        return PreparedBatch(events, cursor, rejected, skipped, noted, prepared=prepared)
    return Batch(events, cursor, rejected, skipped, noted)
