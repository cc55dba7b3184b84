"""`call_csv` presets: the call-log exports of phone systems whose layout is documented.

Each preset is written from the system's own documentation of its export, cited beside it. Its
columns are optional (a file without one simply does not give that key), its outcome and
direction values are matched ignoring case, and a source's own `columns:`, `outcomes:` and
`directions:` entries override it.

Systems that get no preset, because what their users download is not documented (a `columns:`
mapping written from a real file reads them; docs/connectors/phone.md has examples):
- Aircall's Call History download (the `aircall` preset reads the API's call objects);
- RingCentral's call log download (separate Date and Time columns: `entered: [Date, Time]`);
- Zoom Phone, Dialpad, 8x8 and Vonage Business: only their APIs are documented;
- Twilio: its Calls CSV (the REST resource with `.csv`) is documented, but one row cannot give a
  hold time: Twilio answers every inbound call that runs TwiML itself, and the person who picks
  up is a child leg (`ParentCallSid`) with no answer time of its own, so every call would read
  "answered within a second".
"""

from __future__ import annotations

from connectors.tabular import Direction, Preset, Row

# 3CX CDR output fields, in the order the 3CX documentation lists them; the CDR settings let an
# administrator choose which fields go out and in what order (`fields:` says so). No header.
THREECX_FIELDS = (
    "historyid callid duration time-start time-answered time-end reason-terminated from-no "
    "to-no from-dn to-dn dial-no reason-changed final-number final-dn bill-code bill-rate "
    "bill-cost bill-name chain from-type to-type final-type from-dispname to-dispname "
    "final-dispname missed-queue-calls"
).split()

# FreeSWITCH mod_cdr_csv, the `example` template (the default of the vanilla configuration):
# one row per A-leg at hang-up, no header, times in the server's local time.
FREESWITCH_FIELDS = (
    "caller_id_name caller_id_number destination_number context start_stamp answer_stamp "
    "end_stamp duration billsec hangup_cause uuid bleg_uuid accountcode read_codec write_codec"
).split()

PRESETS: dict[str, Preset] = {
    # Aircall's call object as its API gives it (developer.aircall.io/api-references/#call-overview,
    # field list mirrored at docs.partner-dwh.monta.com/docs/aircall-calls): times as epoch
    # seconds or ISO 8601 in UTC, `raw_digits` the outside party's number. Missed-call reasons:
    # support.aircall.io/hc/en-gb/articles/14936017803549 ("Missed Call Reasons in Smartflows").
    "aircall": Preset(
        source="Aircall API call object",
        columns={
            "id": "id",
            "entered": "started_at",
            "answered": "answered_at",
            "ended": "ended_at",
            "direction": "direction",
            "caller": "raw_digits",
            "callee": "raw_digits",
            "outcome": "missed_call_reason",
            "voicemail": "voicemail",
        },
        outcomes={
            # The call reached the "At any other time" branch: closed, nobody could take it.
            "out_of_opening_hours": "exit_empty",
            # "The caller hangs up during the first 10 seconds": a short abandon.
            "short_abandoned": "short_abandoned",
            "abandoned_in_ivr": "abandoned",
            "abandoned_in_classic": "abandoned",
            "no_available_agent": "exit_empty",
            "agents_did_not_answer": "timeout",
        },
        timezone="UTC",
        # "An inbound call is considered answered when any user or agent picks up"
        # (support.aircall.io/hc/en-gb/articles/13395542101661, Analytics call attributes).
        answers_are_people=True,
        hint=(
            "the aircall preset reads the API's call objects (started_at, answered_at, ...); "
            "the Call History download names its columns otherwise: map them with columns:"
        ),
    ),
    # 3CX CDR (www.3cx.com/blog/docs/cdr-call-data-records/; field meanings as 3CX lists them,
    # e.g. www.tim4biz.com/pbx/3cx/): times `YYYY/MM/DD HH:MM:SS`; `duration` is `HH:MM:SS` from
    # the answer to the end (in real records time-end - time-answered equals it): the talk time.
    "3cx": Preset(
        source="3CX CDR output",
        header=False,
        fields=tuple(THREECX_FIELDS),
        columns={
            "id": "historyid",
            "entered": "time-start",
            "answered": "time-answered",
            "ended": "time-end",
            "talk": "duration",
            "caller": "from-no",
            "callee": "to-no",
        },
    ),
    # Talkdesk's calls report (docs.talkdesk.com/docs/calls-report; the `type` values at
    # docs.talkdesk.com/docs/calls-report-reporting), downloaded as CSV (`format: csv`,
    # docs.talkdesk.com/reference/download-a-report): times in UTC, durations in seconds.
    # `wait_time` is "the time the caller waited for the call to be answered or to go to
    # voicemail" from entering the waiting queue (the IVR before it is not counted).
    "talkdesk": Preset(
        source="Talkdesk calls report",
        columns={
            "id": "call_id",
            "entered": "start_at",
            "ended": "end_at",
            "caller": "contact_phone_number",
            "callee": "contact_phone_number",
            "queue": "talkdesk_phone_display_name",
            "direction": "type",
            "outcome": "type",
            "wait": "wait_time",
            "talk": "talk_time",
            "agent": "handling_user_name",
        },
        directions={
            "inbound": "inbound",
            "missed": "inbound",
            "abandoned": "inbound",
            "short_abandoned": "inbound",
            "voicemail": "inbound",
            "outbound": "outbound",
            "outbound_missed": "outbound",
        },
        outcomes={
            "inbound": "answered",  # answered by an agent
            "missed": "abandoned",  # rang agents, the caller hung up while it rang
            "abandoned": "abandoned",
            "short_abandoned": "short_abandoned",
            "voicemail": "voicemail",
        },
        timezone="UTC",
    ),
    # FreeSWITCH mod_cdr_csv with the `example` template (signalwire/freeswitch,
    # conf/vanilla/autoload_configs/cdr_csv.conf.xml; developer.signalwire.com/freeswitch/
    # FreeSWITCH-Explained/Modules/mod_cdr_csv_6587322). `duration` runs from the channel's
    # creation to hang-up and `billsec` from its answer, so their difference is the wait before
    # the answer (the whole call when it was not answered). A template with `${waitsec}` (from
    # creation to the bridge to a person) gives that wait instead: name it in `fields:`.
    "freeswitch": Preset(
        source="FreeSWITCH mod_cdr_csv example template",
        header=False,
        fields=tuple(FREESWITCH_FIELDS),
        columns={
            "id": "uuid",
            "entered": "start_stamp",
            "answered": "answer_stamp",
            "ended": "end_stamp",
            "duration": "duration",
            "billable": "billsec",
            "wait_to_answer": "waitsec",
            "caller": "caller_id_number",
            "callee": "destination_number",
        },
    ),
}


class CallRules:
    """What a system's record says beyond our keys, read from its own columns: the direction,
    calls the system placed itself, whether a person answered, where the system ended a call no
    person took, and whether the caller hung up. Each answer is None when the record does not
    say (the generic rules then decide)."""

    # Columns without which `person` cannot tell (a file that lacks them says so once).
    person_columns: tuple[str, ...] = ()

    def direction(self, row: Row) -> Direction | None:
        return None

    def originated(self, row: Row) -> str | None:
        """Why the system placed this call itself (a few fixed words), or None."""
        return None

    def person(self, row: Row) -> bool | None:
        return None

    def ended_by_system(self, row: Row) -> str | None:
        """Where the system ended a call no person took (its destination), or None."""
        return None

    def reached_voicemail(self, row: Row) -> bool:
        """Whether the call no person took ended in voicemail: the caller could leave a
        message, and is owed a callback."""
        return False

    def voicemail_answered(self, row: Row) -> bool:
        """Whether the record's answer time is voicemail's own (voicemail was the first thing
        to take the call), so the wait for a person ended then. Otherwise an IVR or a queue may
        have answered before, and the record does not say when voicemail took the call."""
        return False

    def caller_hung_up(self, row: Row) -> bool | None:
        return None


def _folded(row: Row, column: str) -> str:
    return row.column(column).casefold().replace("_", "").replace(" ", "")


class ThreeCxRules(CallRules):
    """3CX CDR output. 3CX documents the fields (www.3cx.com/blog/docs/cdr-call-data-records/;
    from-type "Source type", to-type "Destination type", final-type "Final destination type",
    chain "All endpoints which were involved in the call": www.tim4biz.com/pbx/3cx/) but not
    their values; these are the values 3CX writes in real records: `Line` (v20 also
    `external_line`) for a trunk, `Extension`, `Queue`, `Ivr`, `RingGroup`, `VoiceMail`,
    `ConfPlace`, and `EndCall` for the destination that just hangs up; `MakeCall` and
    `PlayFile` for calls 3CX places itself (its call-control API). reason-terminated
    `TerminatedBySrc` (v20 `src_participant_terminated`): the caller hung up. A final-type
    `VoiceMail` is a call no person took that reached voicemail; its answer time is
    voicemail's own only when voicemail was also the first destination (to-type). Compared
    ignoring case, `_` and spaces."""

    person_columns = ("final-type", "to-type")
    LINE = frozenset({"line", "externalline"})
    PEOPLE = frozenset({"extension"})
    SYSTEM_ORIGIN = frozenset({"makecall", "playfile"})
    SYSTEM_ENDS = frozenset({"endcall"})
    VOICEMAIL = frozenset({"voicemail", "vmail"})

    def _final(self, row: Row) -> str:
        return _folded(row, "final-type") or _folded(row, "to-type")

    def direction(self, row: Row) -> Direction | None:
        source = _folded(row, "from-type")
        if not source:
            return None
        if source in self.LINE:
            return "inbound"  # from a trunk: a customer, whatever number (or none) it shows
        if self._final(row) in self.LINE or _folded(row, "to-type") in self.LINE:
            return "outbound"
        return "internal"

    def originated(self, row: Row) -> str | None:
        kinds = {_folded(row, "from-type"), _folded(row, "to-type")} & self.SYSTEM_ORIGIN
        return "3CX MakeCall/PlayFile" if kinds else None

    def person(self, row: Row) -> bool | None:
        final = self._final(row)
        if not final:
            return None
        # An inbound call whose final destination is a line was forwarded to a person's number.
        return final in self.PEOPLE or final in self.LINE

    def ended_by_system(self, row: Row) -> str | None:
        """EndCall anywhere on the way; else a destination that is no person (a queue, an IVR)
        where the call ended and the caller did not hang up: 3CX ended it there."""
        number = row.column("final-dn") or row.column("to-dn")
        for column in ("final-type", "to-type"):
            if _folded(row, column) in self.SYSTEM_ENDS:
                return f"3CX {row.column(column)} {number}".strip()
        final = self._final(row)
        if final and self.caller_hung_up(row) is False and not self.person(row):
            if final not in self.VOICEMAIL:
                name = row.column("final-type") or row.column("to-type")
                return f"3CX {name} {number}".strip()
        return None

    def reached_voicemail(self, row: Row) -> bool:
        return self._final(row) in self.VOICEMAIL

    def voicemail_answered(self, row: Row) -> bool:
        return _folded(row, "to-type") in self.VOICEMAIL  # the first destination: no IVR before

    def caller_hung_up(self, row: Row) -> bool | None:
        reason = _folded(row, "reason-terminated")
        if not reason:
            return None
        return reason in ("terminatedbysrc", "srcparticipantterminated")


class FreeSwitchRules(CallRules):
    """FreeSWITCH mod_cdr_csv. `${direction}` is relative to FreeSWITCH, not to the business
    (inbound: any channel it received, from a trunk or from one of our phones; outbound: one it
    created, switch_channel.c): only `outbound` says something, that FreeSWITCH placed the call
    itself (an originate; with legs=a no B-leg is written). A person answered when the call was
    bridged: `${waitsec}` is bridged - created and 0 when never bridged, `${bridge_stamp}` is
    empty when never bridged (developer.signalwire.com/freeswitch, "Switch core variables":
    "wait (from creation to bridged state) waitsec"). `answer_stamp`, `answersec` and `billsec`
    count any answer, an IVR's or voicemail's too, and `bleg_uuid` is never set by FreeSWITCH
    itself: the stock `example` template cannot tell a person's answer from the PBX's.
    `${last_app}`, when a template has it: `voicemail` reached voicemail; `hangup` the dialplan
    ended the call (application names as mod_dptools and mod_voicemail register them)."""

    person_columns = ("waitsec", "bridge_stamp")

    def originated(self, row: Row) -> str | None:
        return "FreeSWITCH originate" if _folded(row, "direction") == "outbound" else None

    def direction(self, row: Row) -> Direction | None:
        return None  # `inbound` is any channel FreeSWITCH received: decided by the numbers

    def person(self, row: Row) -> bool | None:
        stamp = row.column("bridge_stamp")
        if stamp:
            return True
        wait = row.column("waitsec")
        if wait:
            try:
                return float(wait) > 0
            except ValueError:
                return None
        if row.layout.find("bridge_stamp") is not None:
            return False  # the template has the column, and it is empty: never bridged
        return None

    def ended_by_system(self, row: Row) -> str | None:
        app = _folded(row, "last_app")
        return f"FreeSWITCH {row.column('last_app')}" if app == "hangup" else None

    def reached_voicemail(self, row: Row) -> bool:
        # `answer_stamp` may be an IVR's before voicemail: the wait runs to the end of the call.
        return _folded(row, "last_app") == "voicemail"


# The rules of each preset whose records say more than our keys (see CallRules).
RULES: dict[str, CallRules] = {"3cx": ThreeCxRules(), "freeswitch": FreeSwitchRules()}
