"""The mbox source kind, against real mbox files written in a temporary folder."""

from __future__ import annotations

import mailbox
import re
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from softcopy.errors import BadRecord, ConfigError
from softcopy.memory.items import MemoryItem
from softcopy.memory.sources import mbox
from softcopy.memory.sources.base import UnitScan
from softcopy.memory.sources.mbox import MboxSource

UTC_TZ = ZoneInfo("UTC")

PLAIN = b"""\
From ann@example.com Sat Mar  2 10:00:00 2024
From: Ann Example <ann@example.com>
To: Bob <bob@example.com>, carol@example.com
Cc: "Dee, D." <dee@example.com>
Subject: Standup
 notes
Date: Sat, 02 Mar 2024 10:00:00 +0100
Message-ID: <plain-1@example.com>

Yesterday: shipped the release.
Today: planning.

"""

LATIN1 = (
    b"From j@example.de Sat Mar  2 11:00:00 2024\n"
    b"From: =?iso-8859-1?q?J=F6rg_M=FCller?= <j@example.de>\n"
    b"To: ann@example.com\n"
    b"Subject: =?iso-8859-1?q?Caf=E9?= =?iso-8859-1?q?_am_Montag?=\n"
    b"Date: Sat, 02 Mar 2024 11:00:00 +0100\n"
    b"Message-ID: <latin-1@example.de>\n"
    b"MIME-Version: 1.0\n"
    b"Content-Type: text/plain; charset=iso-8859-1\n"
    b"Content-Transfer-Encoding: 8bit\n"
    b"\n"
    b"Gr\xfc\xdfe aus K\xf6ln, der Kaffee kostet 3 \x80.\n"
    b"\n"
)

ALTERNATIVE = b"""\
From ann@example.com Sun Mar  3 09:00:00 2024
From: ann@example.com
To: bob@example.com
Subject: Both kinds
Date: Sun, 03 Mar 2024 09:00:00 +0000
Message-ID: <alt-1@example.com>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="XX-alt"

This is a multi-part message in MIME format.

--XX-alt
Content-Type: text/plain; charset=utf-8

The plain version.
--XX-alt
Content-Type: text/html; charset=utf-8

<p>The <b>HTML</b> version.</p>
--XX-alt--

"""

HTML_ONLY = b"""\
From news@example.com Sun Mar  3 10:00:00 2024
From: Newsletter <news@example.com>
To: ann@example.com
Subject: News
Date: Sun, 03 Mar 2024 10:00:00 +0000
Message-ID: <html-1@example.com>
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8

<html><head><style>p { color: red; }</style><script>alert("x")</script></head>
<body><h1>Big   news</h1><p>Fish &amp; chips&nbsp;&lt;today&gt;</p>
<p>See   you
there.</p></body></html>

"""

QUOTED_PRINTABLE = b"""\
From ann@example.com Mon Mar  4 10:00:00 2024
From: ann@example.com
To: bob@example.com
Subject: =?utf-8?b?TcO8bmNoZW4=?=
Date: Mon, 04 Mar 2024 10:00:00 +0000
Message-ID: <qp-1@example.com>
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

Na=C3=AFve caf=C3=A9 with a very long line that the sender wrapped with a so=
ft line break.

"""

ATTACHMENT = b"""\
From ann@example.com Mon Mar  4 11:00:00 2024
From: ann@example.com
To: bob@example.com
Subject: Report attached
Date: Mon, 04 Mar 2024 11:00:00 +0000
Message-ID: <att-1@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=mixed42

--mixed42
Content-Type: text/plain; charset=us-ascii

Here is the report.
--mixed42
Content-Type: application/pdf; name="report.pdf"
Content-Disposition: attachment; filename="report.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKJcfsj6IK
--mixed42
Content-Type: text/plain; charset=utf-8
Content-Disposition: attachment; filename*=utf-8''caf%C3%A9.txt

not part of the text
--mixed42--

"""

NO_MESSAGE_ID = b"""\
From ann@example.com Tue Mar  5 10:00:00 2024
From: ann@example.com
To: bob@example.com
Subject: No id
Date: Tue, 05 Mar 2024 10:00:00 +0000

A message without a Message-ID.

"""

NO_DATE = b"""\
From ann@example.com Tue Mar  5 11:00:00 2024
From: ann@example.com
To: bob@example.com
Subject: No date
Message-ID: <nodate@example.com>

Undated.

"""

BAD_DATE = b"""\
From ann@example.com Tue Mar  5 12:00:00 2024
From: ann@example.com
To: bob@example.com
Subject: Bad date
Date: the day after tomorrow
Message-ID: <baddate@example.com>

Date is junk.

"""

QUOTED_FROM = b"""\
From ann@example.com Wed Mar  6 10:00:00 2024
From: ann@example.com
To: bob@example.com
Subject: Quoting
Date: Wed, 06 Mar 2024 10:00:00 +0000
Message-ID: <quoted@example.com>

First paragraph.

>From here on, the body mentions a From line.
From the middle of a paragraph, no split either.

"""


def write(tmp_path: Path, *messages: bytes, name: str = "mail.mbox") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(messages))
    return path


def scan(path: Path, tz: ZoneInfo = UTC_TZ) -> tuple[MboxSource, str, UnitScan]:
    source = MboxSource(name="mail", path=path, tz=tz, options={})
    [(unit, _stamp)] = list(source.units())
    return source, unit, source.scan_unit(unit)


def load_all(source: MboxSource, unit: str, result: UnitScan) -> dict[str, MemoryItem]:
    loaded = list(source.load(unit, [ref.locator for ref in result.refs]))
    assert all(isinstance(item, MemoryItem) for item in loaded)
    return {item.item_id: item for item in loaded}  # type: ignore[union-attr]


def only_item(path: Path, tz: ZoneInfo = UTC_TZ) -> MemoryItem:
    source, unit, result = scan(path, tz)
    assert result.problems == []
    [item] = load_all(source, unit, result).values()
    return item


def test_kind_constants() -> None:
    assert mbox.KIND == "mbox" == MboxSource.kind
    assert mbox.SOURCE is MboxSource


def test_plain_message(tmp_path: Path) -> None:
    item = only_item(write(tmp_path, PLAIN), ZoneInfo("Europe/Berlin"))
    assert item.item_id == "mbox:plain-1@example.com"
    assert item.source == "mail"
    assert item.ts == datetime(2024, 3, 2, 9, 0, tzinfo=UTC)
    assert item.day == date(2024, 3, 2)
    assert item.title == "Standup notes"
    assert item.text == "Yesterday: shipped the release.\nToday: planning."
    assert item.meta == {
        "from": "Ann Example <ann@example.com>",
        "to": ["Bob <bob@example.com>", "carol@example.com"],
        "cc": ["Dee, D. <dee@example.com>"],
    }


def test_day_follows_the_configured_timezone(tmp_path: Path) -> None:
    late = PLAIN.replace(b"Sat, 02 Mar 2024 10:00:00 +0100", b"Sat, 02 Mar 2024 23:30:00 -0500")
    path = write(tmp_path, late)
    assert only_item(path, ZoneInfo("America/New_York")).day == date(2024, 3, 2)
    assert only_item(path, UTC_TZ).day == date(2024, 3, 3)
    assert only_item(path, UTC_TZ).ts == datetime(2024, 3, 3, 4, 30, tzinfo=UTC)


def test_latin1_body_and_encoded_headers(tmp_path: Path) -> None:
    item = only_item(write(tmp_path, LATIN1))
    assert item.title == "Café am Montag"
    assert item.meta["from"] == "Jörg Müller <j@example.de>"
    # ISO-8859-1 is read as Windows-1252, as mail clients do: 0x80 is the euro sign.
    assert item.text == "Grüße aus Köln, der Kaffee kostet 3 €."


def test_unknown_charset_falls_back_to_latin1(tmp_path: Path) -> None:
    odd = LATIN1.replace(b"charset=iso-8859-1", b"charset=x-no-such-charset")
    odd = odd.replace(b"=?iso-8859-1?q?Caf=E9?=", b"=?x-unknown?q?Caf=E9?=")
    item = only_item(write(tmp_path, odd))
    assert item.title == "Café am Montag"
    assert item.text.startswith("Grüße aus Köln")


def test_raw_8bit_headers_are_decoded(tmp_path: Path) -> None:
    raw = PLAIN.replace(b"Ann Example", "Zoë Ünal".encode()).replace(b"Bob", b"B\xf6b")
    item = only_item(write(tmp_path, raw))
    assert item.meta["from"] == "Zoë Ünal <ann@example.com>"
    assert item.meta["to"][0] == "Böb <bob@example.com>"


def test_multipart_alternative_prefers_plain_text(tmp_path: Path) -> None:
    item = only_item(write(tmp_path, ALTERNATIVE))
    assert item.text == "The plain version."
    assert "attachments" not in item.meta


def test_html_only_is_stripped_to_text(tmp_path: Path) -> None:
    item = only_item(write(tmp_path, HTML_ONLY))
    assert item.text == "Big news\nFish & chips <today>\nSee you there."


def test_quoted_printable_is_decoded(tmp_path: Path) -> None:
    item = only_item(write(tmp_path, QUOTED_PRINTABLE))
    assert item.title == "München"
    assert item.text == (
        "Naïve café with a very long line that the sender wrapped with a soft line break."
    )


def test_attachments_are_listed_not_read(tmp_path: Path) -> None:
    item = only_item(write(tmp_path, ATTACHMENT))
    assert item.text == "Here is the report."
    assert item.meta["attachments"] == ["report.pdf", "café.txt"]


def test_message_without_id_gets_a_stable_id(tmp_path: Path) -> None:
    first = only_item(write(tmp_path, NO_MESSAGE_ID, name="a.mbox"))
    assert re.fullmatch(r"mbox:[0-9a-f]{24}", first.item_id)
    # Same message, re-exported at another position of another file: same id.
    _, _, result = scan(write(tmp_path, PLAIN, NO_MESSAGE_ID, name="b.mbox"))
    assert first.item_id in {ref.item_id for ref in result.refs}


def test_a_message_without_a_date_takes_its_from_line_date(tmp_path: Path) -> None:
    path = write(tmp_path, PLAIN, NO_DATE, ALTERNATIVE, BAD_DATE)
    source, unit, result = scan(path)
    assert result.problems == []
    items = load_all(source, unit, result)
    assert items["mbox:nodate@example.com"].ts == datetime(2024, 3, 5, 11, tzinfo=UTC)
    assert items["mbox:baddate@example.com"].ts == datetime(2024, 3, 5, 12, tzinfo=UTC)
    assert items["mbox:nodate@example.com"].day == date(2024, 3, 5)


RECEIVED_ONLY = b"""\
From MAILER-DAEMON
Received: from a.example.com by b.example.com; Tue, 5 Mar 2024 09:00:00 +0000
Received: from c.example.com by a.example.com;
\tTue, 5 Mar 2024 23:30:00 -0500
Received: junk without a date
From: ann@example.com
Subject: Relayed
Message-ID: <relayed@example.com>

Only the relays said when.

"""

NO_TIME_ANYWHERE = b"""\
From MAILER-DAEMON
From: ann@example.com
Subject: Timeless
Message-ID: <timeless@example.com>

Nobody said when.

"""


def test_then_the_newest_received_date_and_only_then_a_bad_record(tmp_path: Path) -> None:
    path = write(tmp_path, PLAIN, RECEIVED_ONLY, NO_TIME_ANYWHERE)
    source, unit, result = scan(path, ZoneInfo("America/New_York"))
    items = load_all(source, unit, result)
    # the newest Received date, in the configured timezone's day
    assert items["mbox:relayed@example.com"].ts == datetime(2024, 3, 6, 4, 30, tzinfo=UTC)
    assert items["mbox:relayed@example.com"].day == date(2024, 3, 5)
    [timeless] = result.problems
    assert isinstance(timeless, BadRecord)
    assert (timeless.path, timeless.where, timeless.day) == (str(path), "message 3", None)
    assert "no Date header" in timeless.reason and "From line" in timeless.reason


def test_load_round_trips_by_locator(tmp_path: Path) -> None:
    messages = (PLAIN, LATIN1, ALTERNATIVE, HTML_ONLY, QUOTED_PRINTABLE, ATTACHMENT)
    source, unit, result = scan(write(tmp_path, *messages, NO_MESSAGE_ID, QUOTED_FROM))
    assert len(result.refs) == 8
    assert result.problems == []
    items = load_all(source, unit, result)
    for ref in result.refs:
        item = items[ref.item_id]
        assert item.content_hash == ref.content_hash
        assert item.day == ref.day
        assert item.ts.tzinfo is UTC
    # A subset, in any order, loads just those.
    some = [result.refs[5].locator, result.refs[1].locator]
    assert {i.item_id for i in source.load(unit, some)} == {  # type: ignore[union-attr]
        result.refs[1].item_id,
        result.refs[5].item_id,
    }


def test_stale_locator_is_a_bad_record(tmp_path: Path) -> None:
    path = write(tmp_path, PLAIN, ALTERNATIVE)
    source, unit, result = scan(path)
    path.write_bytes(b"\n" + path.read_bytes())  # shifts every message by one byte
    [moved, _] = list(source.load(unit, [r.locator for r in result.refs]))
    assert isinstance(moved, BadRecord)
    assert "scan the file again" in moved.reason
    [bad] = list(source.load(unit, ["junk"]))
    assert isinstance(bad, BadRecord)
    path.unlink()
    [gone] = list(source.load(unit, [result.refs[0].locator]))
    assert isinstance(gone, BadRecord)


def test_locators_survive_new_mail_appended(tmp_path: Path) -> None:
    path = write(tmp_path, PLAIN, ALTERNATIVE)
    source, unit, before = scan(path)
    with path.open("ab") as handle:
        handle.write(HTML_ONLY)
    loaded = list(source.load(unit, [ref.locator for ref in before.refs]))
    assert [(i.item_id, i.content_hash) for i in loaded] == [  # type: ignore[union-attr]
        (ref.item_id, ref.content_hash) for ref in before.refs
    ]
    assert len(source.scan_unit(unit).refs) == 3


def test_quoted_from_lines_do_not_split(tmp_path: Path) -> None:
    item = only_item(write(tmp_path, QUOTED_FROM))
    assert item.text == (
        "First paragraph.\n\n"
        "From here on, the body mentions a From line.\n"
        "From the middle of a paragraph, no split either."
    )


def test_reads_what_the_stdlib_mailbox_writes(tmp_path: Path) -> None:
    path = tmp_path / "written.mbox"
    box = mailbox.mbox(path)
    for n in range(3):
        msg = EmailMessage()
        msg["From"] = "Ann <ann@example.com>"
        msg["To"] = "bob@example.com"
        msg["Subject"] = f"Note {n}: ünïcode"
        msg["Date"] = f"Thu, 07 Mar 2024 1{n}:00:00 +0000"
        msg["Message-ID"] = f"<written-{n}@example.com>"
        msg.set_content(f"Body {n}\n\nFrom the start of a line.\n")
        msg.add_alternative(f"<p>Body {n}</p>", subtype="html")
        msg.add_attachment(
            b"\x00\x01", maintype="application", subtype="octet-stream", filename="blob.bin"
        )
        box.add(msg)
    box.close()
    source, unit, result = scan(path)
    assert result.problems == []
    items = load_all(source, unit, result)
    assert sorted(items) == [f"mbox:written-{n}@example.com" for n in range(3)]
    item = items["mbox:written-1@example.com"]
    assert item.title == "Note 1: ünïcode"
    assert item.text == "Body 1\n\nFrom the start of a line."
    assert item.meta["attachments"] == ["blob.bin"]


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = write(tmp_path, PLAIN.replace(b"\n", b"\r\n"), ALTERNATIVE.replace(b"\n", b"\r\n"))
    source, unit, result = scan(path)
    assert result.problems == []
    items = load_all(source, unit, result)
    assert items["mbox:plain-1@example.com"].title == "Standup notes"
    assert items["mbox:plain-1@example.com"].text.endswith("Today: planning.")
    assert items["mbox:alt-1@example.com"].text == "The plain version."


def test_duplicate_message_ids(tmp_path: Path) -> None:
    edited = PLAIN.replace(b"planning.", b"planning, edited.")
    _, _, result = scan(write(tmp_path, PLAIN, PLAIN, edited))
    assert [ref.item_id for ref in result.refs] == ["mbox:plain-1@example.com"]
    [clash] = result.problems
    assert clash.where == "message 3"
    assert "first at message 1" in clash.reason


def test_units_of_a_folder(tmp_path: Path) -> None:
    write(tmp_path, PLAIN, name="box/inbox.mbox")
    write(tmp_path, ALTERNATIVE, name="box/2024/archive.mbox")
    (tmp_path / "box" / "notes.txt").write_text("not mail")
    source = MboxSource(name="mail", path=tmp_path / "box", tz=UTC_TZ, options={})
    units = dict(source.units())
    assert sorted(units) == ["2024/archive.mbox", "inbox.mbox"]
    stat = (tmp_path / "box" / "inbox.mbox").stat()
    assert units["inbox.mbox"] == f"{stat.st_mtime_ns}:{stat.st_size}"
    assert [r.item_id for r in source.scan_unit("2024/archive.mbox").refs] == [
        "mbox:alt-1@example.com"
    ]


def test_missing_path_is_a_config_error(tmp_path: Path) -> None:
    source = MboxSource(name="mail", path=tmp_path / "nope.mbox", tz=UTC_TZ, options={})
    with pytest.raises(ConfigError, match=r"nope\.mbox"):
        list(source.units())


def test_empty_and_non_mbox_files(tmp_path: Path) -> None:
    assert scan(write(tmp_path, b"", name="empty.mbox"))[2] == UnitScan()
    _, _, result = scan(write(tmp_path, b"just some text\n", name="text.mbox"))
    assert result.refs == []
    [problem] = result.problems
    assert "not an mbox" in problem.reason


def test_encoded_words_and_file_names_in_odd_forms(tmp_path: Path) -> None:
    raw = ATTACHMENT.replace(
        b"Subject: Report attached",
        b"Subject: =?utf-8?q?Caf=C3=A9?=\n am =?utf-8?b?TcO8bmNoZW4=?= C:\\users",
    )
    raw = raw.replace(b'filename="report.pdf"', b'filename="=?utf-8?q?r=C3=A9sum=C3=A9.pdf?="')
    raw = raw.replace(b"filename*=utf-8''caf%C3%A9.txt", 'filename="naïve.txt"'.encode())
    item = only_item(write(tmp_path, raw))
    assert item.title == "Café am München C:\\users"
    assert item.meta["attachments"] == ["résumé.pdf", "naïve.txt"]


def test_encoded_words_in_several_charsets_and_mboxrd_quoting_levels(tmp_path: Path) -> None:
    """A mailing-list archive as found: KOI8-R, ISO-8859-1 and UTF-8 encoded words, and
    mboxrd's `>>From ` (a body line that was `>From `) losing exactly one `>`."""
    raw = (
        b"From list@example.org Fri Mar  1 10:00:00 2024\n"
        b"From: =?koi8-r?b?98HTyczJyg==?= <v@example.ru>\n"
        b"To: =?iso-8859-1?q?Ren=E9?= <r@example.fr>, =?utf-8?b?5bGx55Sw?= <y@example.jp>\n"
        b"Subject: =?koi8-r?q?=F0=D2=C9=D7=C5=D4?= =?utf-8?q?_=E2=80=94_hi?=\n"
        b"Date: Fri, 01 Mar 2024 10:00:00 +0000\n"
        b"Message-ID: <rd@example.org>\n\n"
        b">From the start\n>>From a quote\n>>>From deeper\n\n"
    )
    item = only_item(write(tmp_path, raw))
    assert item.title == "Привет — hi"
    assert item.meta["from"] == "Василий <v@example.ru>"
    assert item.meta["to"] == ["René <r@example.fr>", "山田 <y@example.jp>"]
    assert item.text == "From the start\n>From a quote\n>>From deeper"
