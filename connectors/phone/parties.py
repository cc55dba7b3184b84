"""Who is on each end of a call: our own extensions and peers, the trunks, and outsiders.

A phone monitor's first judgement is which calls are customers calling us. The record says it
best where the system writes it (a direction column, 3CX's from-type/to-type); otherwise the
channel a call arrived on does (a trunk peer, or one of our phones), and counting digits comes
last, as a guess the poll says it made. Every phone kind (`asterisk_cdr`, `call_csv`,
`asterisk_queue_log`) takes the same two settings:

- `extensions:` patterns (shell-style, matched ignoring case) of our own extensions and peers,
  as numbers or channels (`["1???", "SIP/1*", "PJSIP/1*"]`). A call from one of them is
  internal whatever dialplan context it ran through; in a queue_log, a caller id that is one of
  them is staff testing the queue. Without it, a number of 2 to 6 digits is an extension, and so
  is a SIP, PJSIP or IAX2 channel whose peer is such a number (FreePBX names an extension's
  endpoint by its number, a trunk's by the trunk's name);
- `trunks:` patterns of the trunks' channels (`["PJSIP/sipgate*"]`): a call arriving on one is
  inbound whatever its caller id says. Without it, a SIP, PJSIP or IAX2 channel whose peer is a
  name rather than a number is taken for a trunk.

A withheld caller (`anonymous`, `Restricted`, empty: monitor.measure.events.is_withheld) is an
outsider: our own phones do not withhold their number from the PBX.
"""

from __future__ import annotations

import fnmatch
import re

from pydantic import Field

from monitor.config import SourceSettings
from monitor.measure.events import destination, is_withheld

# As many digits as a callback number needs (monitor.measure.events): fewer are an extension,
# a feature code or a short service number, never a customer we can call.
OUTSIDE_DIGITS = 9
# tech/peer-uniqueid: `PJSIP/1001-0000002a`, `SIP/provider-00000001`, `IAX2/1001-1234`.
_PEER = re.compile(r"^(?:SIP|PJSIP|IAX2)/(?P<peer>[^/@;]+?)(?:-[0-9a-fA-F]+)?$", re.IGNORECASE)

GUESSED = "(a guess from the numbers)"


def _short_number(text: str) -> bool:
    """2 to 6 digits: an extension, a feature code or a short service number."""
    return text.isdecimal() and 2 <= len(text) <= 6


class PartySettings(SourceSettings):
    """`extensions:` and `trunks:` (see the module docstring)."""

    extensions: list[str] | None = None  # default: numbers of 2-6 digits, and their channels
    trunks: list[str] = Field(default_factory=list)  # default: SIP/PJSIP/IAX2 peers with names


class Parties:
    """Our extensions and trunks, as a source's settings name them."""

    def __init__(self, settings: PartySettings) -> None:
        self.extensions = [p.casefold() for p in settings.extensions or []]
        self.trunks = [p.casefold() for p in settings.trunks]
        self.defaults = settings.extensions is None
        # `extensions:` names ours: a number matching it is ours for certain. The default
        # (short numbers) is a guess, as counting digits is.
        self.configured = not self.defaults
        # With the default (no patterns), a number of 7 digits or more, or one after a "+", is
        # never an extension: nearly every caller id, told apart without a call (`Calls`).
        self.long_numbers_outside = self.defaults

    def is_extension(self, value: str) -> bool:
        """Whether a number or a channel is one of ours (see the module docstring)."""
        value = value.strip()
        if not value:
            return False
        if self.extensions and _matches(value, self.extensions):
            return True
        if not self.defaults:
            return False
        # Nearly every caller id: digits, perhaps after a "+", which no channel starts with.
        if value.isdecimal():
            return _short_number(value)
        if value[0] == "+":
            return False
        peer = _PEER.match(value)
        return bool(peer and _short_number(peer["peer"]))

    def is_trunk(self, channel: str) -> bool:
        """Whether a channel is a trunk's (see the module docstring)."""
        channel = channel.strip()
        if not channel:
            return False
        if self.trunks:
            return _matches(channel, self.trunks)
        if self.extensions and _matches(channel, self.extensions):
            return False
        peer = _PEER.match(channel)
        return bool(peer and not peer["peer"].isdigit() and not self.is_extension(channel))

    def is_outside(self, number: str) -> bool:
        """Whether a number is an outsider's: long enough to call back, or withheld."""
        return not self.is_extension(number) and (
            digits(number) >= OUTSIDE_DIGITS or is_withheld(number)
        )


def guess(caller: str, callee: str, parties: Parties) -> str:
    """The direction of a call from its numbers alone (the last resort): an outsider (a long
    or withheld number) calling one of ours is inbound, one of ours calling a long number is
    outbound, anything else internal."""
    outside_caller = parties.is_outside(caller) if caller.strip() else True
    outside_callee = digits(callee) >= OUTSIDE_DIGITS and not parties.is_extension(callee)
    if outside_caller and not outside_callee:
        return "inbound"
    if outside_callee and not outside_caller:
        return "outbound"
    return "internal"


def digits(number: str) -> int:
    return sum(ch.isdigit() for ch in number)


def _matches(value: str, patterns: list[str]) -> bool:
    folded = value.casefold()
    return any(fnmatch.fnmatchcase(folded, pattern) for pattern in patterns)


def system_ended(where: str) -> str:
    """The poll's remark for a call the system ended without a person, at `where` (bounded
    and made printable as the call keeps it: monitor.measure.events.destination)."""
    return f"calls the system ended at {destination(where)}"
