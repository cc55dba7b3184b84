"""JSON documents read record by record, in memory bounded by one record, not the document.

`json.loads` of a 200 MB document `[{},{},…]` builds 66 million dicts (5 GB). Here the document
is parsed as a stream of events by ijson (the yajl C parser; pure Python only as a fallback,
below) and only one record at a time is built into Python values:

- a top-level array: each element is a record (`.[3]`);
- an object holding an array under `unwrap` (`{"chats": [...], "count": 2}`): each element of
  that array is a record (`.chats[3]`), the other keys are skipped;
- anything else is one record, the whole document (path "").

A record is built under a byte budget (`max_record_bytes`, counted on the bytes the parser has
read while building it, to within one read buffer), a count of values and a nesting limit
(together they bound its memory to some 50 MB): past any of them it is
skipped to its end without being built, and reported as a `RecordError` in its place, so one
record never costs more than itself. Syntax errors end the document with a `RecordError` (there
is no resynchronising inside a JSON text); the records before it are kept. No reason quotes the
document's text (ijson's own messages do, so they are not passed on).

Numbers are floats or ints as with `json.loads` (`use_float`), not Decimals. yajl turns a lone
low surrogate escape ("\\udc00") into bytes that Python cannot decode, and refuses integers
beyond 64 bits; such a document is then read again by ijson's pure-Python backend, which
passes them on as `json.loads` does (sanitising strings is the events' business), skipping
the records already given.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import Any, BinaryIO

import ijson

from connectors.json_records import RecordError
from monitor.errors import BadRecord

DEFAULT_MAX_RECORD_BYTES = 4 * 1024 * 1024
# A value costs Python 50-100 bytes however few bytes of JSON it took (`{}` is 2): a record is
# also refused past this many values (a real chat of 4 MB holds about a tenth of them).
MAX_RECORD_VALUES = 500_000
MAX_DEPTH = 512
_UTF8_BOM = b"\xef\xbb\xbf"
_STARTS = ("start_map", "start_array")
_ENDS = ("end_map", "end_array")


class _Counted:
    """A binary stream that counts the bytes read from it (the parser reads in blocks)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.count = 0
        self.first = True

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        if self.first and data:
            self.first = False
            if data.startswith(_UTF8_BOM):  # yajl refuses a BOM; json.loads was given none
                data = data[len(_UTF8_BOM) :]
                if not data:
                    data = self.stream.read(size)
        self.count += len(data)
        return data


class _TooLarge(Exception):
    pass


class _Unsupported(Exception):
    """Valid JSON that yajl cannot read (an integer beyond 64 bits)."""


class DocumentError(RecordError):
    """The document is not valid JSON from some point on: the rest of it cannot be read."""


Record = tuple[str, Any]  # (jq path, value) or (jq path, RecordError)


def read_records(
    stream: BinaryIO,
    *,
    unwrap: str | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[Record]:
    """The records of the JSON document in `stream` (see the module docstring), each as
    (path, value), or (path, RecordError) for one that cannot be used."""
    given = 0
    try:
        for item in _records(stream, "yajl2_c", unwrap, max_record_bytes, 0):
            given += 1
            yield item
    except (UnicodeDecodeError, _Unsupported):
        # yajl's lone surrogates and integers beyond 64 bits: read again by the pure-Python
        # parser from the start (slower, and only for such documents).
        stream.seek(0)
        try:
            yield from _records(stream, "python", unwrap, max_record_bytes, given)
        except UnicodeDecodeError:
            yield "", DocumentError("not valid JSON (a string that is not valid Unicode)")


def _records(
    stream: BinaryIO, backend: str, unwrap: str | None, limit: int, skip: int
) -> Iterator[Record]:
    counted = _Counted(stream)
    events = ijson.get_backend(backend).basic_parse(counted, use_float=True)
    reader = _Reader(events, counted, limit)
    path = ""
    index = -1
    try:
        event, value = reader.next()
        if event == "start_array":
            for index, (event, value) in enumerate(reader.elements()):
                path = f".[{index}]"
                if index < skip:
                    reader.skip(event)
                else:
                    yield path, reader.record(event, value)
        elif event == "start_map" and unwrap is not None:
            yield from _unwrapped(reader, unwrap, skip)
        else:
            path = ""
            if skip == 0:
                yield path, reader.record(event, value)
        reader.end()
    except (UnicodeDecodeError, BadRecord):
        # yajl's lone surrogates (read again below); the stream's own failure (a zip member
        # that does not decompress), which its reader locates: neither is a JSON syntax error.
        raise
    except (ijson.JSONError, ValueError) as exc:  # and a number beyond int()'s digit limit
        if backend != "python" and "integer overflow" in str(exc):
            raise _Unsupported from None
        if "UTF8" in str(exc):
            yield "", DocumentError(f"invalid UTF-8 at byte {_bad_utf8_at(stream)}")
            return
        where = f" at or after {path}" if path else ""
        yield "", DocumentError(f"not valid JSON{where} ({_why(exc, counted.count)})")


def _unwrapped(reader: _Reader, key: str, skip: int) -> Iterator[Record]:
    """An object: the elements of its array under `key` as records; without such an array,
    the object itself (built under the budget as one record)."""
    whole: dict[str, Any] | None = {}
    start = reader.counted.count
    found = False
    too_large: RecordError | None = None
    while True:
        event, value = reader.next()
        if event == "end_map":
            break
        name = value
        event, value = reader.next()
        if name == key and event == "start_array" and not found:
            found = True
            whole = None  # the other keys are not needed any more
            for index, (event, value) in enumerate(reader.elements()):
                if index < skip:
                    reader.skip(event)
                else:
                    yield f".{key}[{index}]", reader.record(event, value)
            continue
        if whole is None:
            reader.skip(event)
            continue
        member = reader.record(event, value, start)
        if isinstance(member, RecordError):
            whole, too_large = None, member
        else:
            whole[name] = member
    if not found and skip == 0:
        yield "", whole if whole is not None else too_large


class _Reader:
    """Events in, values out, one record at a time under the byte budget."""

    def __init__(self, events: Iterator[tuple[str, Any]], counted: _Counted, limit: int):
        self.events = events
        self.counted = counted
        self.limit = limit

    def next(self) -> tuple[str, Any]:
        return next(self.events)

    def end(self) -> None:
        """The document has ended: anything after its value is a syntax error (yajl says so)."""
        for _ in self.events:
            pass

    def elements(self) -> Iterator[tuple[str, Any]]:
        """The first event of each element of the array just started."""
        for event, value in self.events:
            if event == "end_array":
                return
            yield event, value

    def skip(self, event: str) -> None:
        """Pass over the rest of a value whose first event was `event`."""
        if event in _STARTS:
            self.close(1)

    def close(self, depth: int) -> None:
        """Pass over events until the `depth` containers open now are closed."""
        for event, _ in self.events if depth else ():
            if event in _STARTS:
                depth += 1
            elif event in _ENDS:
                depth -= 1
                if depth == 0:
                    return

    def record(self, event: str, value: Any, start: int | None = None) -> Any:
        """The value starting with `event`, or a RecordError when it is too large or deep
        (then skipped to its end). `start`: where its budget began (default: here)."""
        if event not in _STARTS:
            return value
        counted = self.counted
        until = (counted.count if start is None else start) + self.limit
        root: Any = {} if event == "start_map" else []
        stack: list[Any] = []
        container = root
        key: Any = None
        events = self.events
        pending = False  # the event in hand when the budget ran out: not processed yet
        values = MAX_RECORD_VALUES
        try:
            for event, value in events:
                values -= 1
                if counted.count > until or not values:
                    pending = True
                    if values:
                        raise _TooLarge(f"record larger than {self.limit:,} bytes")
                    raise _TooLarge(f"record of more than {MAX_RECORD_VALUES:,} values")
                if event == "map_key":
                    key = value
                elif event == "start_map" or event == "start_array":
                    child: Any = {} if event == "start_map" else []
                    if type(container) is list:
                        container.append(child)
                    else:
                        container[key] = child
                    stack.append(container)
                    if len(stack) >= MAX_DEPTH:
                        raise _TooLarge(f"record nested more than {MAX_DEPTH} levels deep")
                    container = child
                elif event == "end_map" or event == "end_array":
                    if not stack:
                        return root
                    container = stack.pop()
                elif type(container) is list:
                    container.append(value)
                else:
                    container[key] = value
        except _TooLarge as exc:
            depth = len(stack) + 1  # containers open now
            root = container = None  # free what was built before skipping the rest
            stack = []
            if pending:
                depth += 1 if event in _STARTS else -1 if event in _ENDS else 0
            self.close(depth)
            return RecordError(str(exc))
        raise ijson.IncompleteJSONError("the document ends inside a value")


def _bad_utf8_at(stream: BinaryIO) -> int:
    """The 1-based position of the first byte that is not UTF-8 (after a BOM), found by
    reading the stream again a block at a time."""
    stream.seek(0)
    decoder = codecs.getincrementaldecoder("utf-8")()
    done = 0
    head = stream.read(len(_UTF8_BOM))
    if head != _UTF8_BOM:
        stream.seek(0)
    while block := stream.read(64 * 1024):
        try:
            decoder.decode(block)
        except UnicodeDecodeError as exc:
            pending = len(exc.object) - len(block)  # bytes of a character begun before
            return done - pending + exc.start + 1
        done += len(block)
    return done + 1


def _why(exc: Exception, position: int) -> str:
    """A reason without the document's text (ijson quotes the bytes around the error)."""
    text = str(exc)
    if "premature EOF" in text or "ends inside" in text or "Incomplete" in text:
        return "the document ends too early"
    return f"a syntax error within the first {position:,} bytes"
