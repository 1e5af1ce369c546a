"""Contacts as files (SPEC §11): CSV and vCard read into records for import, and written for export.

Reading gives one `Record` per contact in the file: the line it starts on (the file's first line being
1) and the fields found, by our names; a field the file lacks is absent, for validation to name. What
cannot be read as a contact at all (a vCard the library cannot parse, a CSV record cut short by the end
of the file) is a `Record` with `error` set. Whatever a file holds, reading it never raises but for
`UnreadableFile`, which says why the file as a whole is not one we read (not UTF-8, no header, …).

CSV: a header row whose column names are matched loosely ("First Name", "first_name", "Given Name",
"E-mail Address", "Mobile Phone", …; unknown columns are ignored), UTF-8 with or without a BOM, commas,
semicolons or tabs as the CSV module's Sniffer finds them in the header. vCard 3.0 and 4.0 (and 2.1) are
parsed by vobject, one card at a time, so that each card's line is known and one bad card spoils only
itself. Written files use the same names and import back as they are.
"""

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import vobject  # type: ignore[import-untyped]  # ships no type hints

from shared.models import CONTACT_FIELDS

CSV_TYPES = frozenset({"text/csv", "application/csv", "text/comma-separated-values"})
VCARD_TYPES = frozenset({"text/vcard", "text/x-vcard", "text/directory"})

#: Column names, as `_column_key` reduces them, that hold each field; the first non-empty one wins.
_COLUMNS = {
    "first_name": ("firstname", "givenname", "first", "forename", "givennames"),
    "last_name": ("lastname", "familyname", "surname", "last", "lastnames"),
    "email": ("email", "emailaddress", "mail", "email1value", "email1", "primaryemail", "emailaddress1"),
    "phone": (
        "phone",
        "phonenumber",
        "telephone",
        "tel",
        "mobile",
        "mobilephone",
        "cellphone",
        "phone1value",
        "primaryphone",
        "homephone",
        "businessphone",
        "workphone",
    ),
}
_FIELD_OF_COLUMN = {column: name for name, columns in _COLUMNS.items() for column in columns}
_NOT_ALPHANUMERIC = re.compile(r"[\W_]+")
_BEGIN = re.compile(r"BEGIN[ \t]*:[ \t]*VCARD[ \t]*$", re.IGNORECASE)
_END = re.compile(r"END[ \t]*:[ \t]*VCARD[ \t]*$", re.IGNORECASE)


class UnreadableFile(ValueError):
    """The file as a whole is not one we can read; the message says why."""


@dataclass(frozen=True)
class Record:
    """One contact of a file: where it starts, its fields by our names, or why it could not be read."""

    line: int
    fields: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def decode(content: bytes) -> str:
    """The file's text: UTF-8, a BOM dropped; UnreadableFile if it is not UTF-8."""
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UnreadableFile(f"the file is not UTF-8 text (byte {error.start})") from None


def read(media_type: str, content: bytes) -> Iterator[Record]:
    """The records of a file of `media_type` (one of CSV_TYPES or VCARD_TYPES)."""
    text = decode(content)
    return read_csv(text) if media_type in CSV_TYPES else read_vcards(text)


def check(media_type: str, content: bytes) -> None:
    """Raise UnreadableFile if the file cannot be read at all; cheap (the text and its header, not its rows)."""
    text = decode(content)
    if media_type in CSV_TYPES:
        _csv_header(text)
    elif not any(_BEGIN.match(line) for line in text.splitlines()):
        raise UnreadableFile("no vCard in the file (no BEGIN:VCARD line)")


# CSV


_LINE_END = re.compile(r"\r\n|\r|\n")


def _column_key(name: str) -> str:
    return _NOT_ALPHANUMERIC.sub("", name).lower()


def _csv_header(text: str) -> tuple[str, list[str | None]]:
    """The file's delimiter, and the field (or None) each column of its header holds.

    Only the delimiter is taken from the Sniffer: a header alone shows nothing of how values are
    quoted, which is as spreadsheets quote them (csv.excel)."""
    first_line = _LINE_END.split(text, maxsplit=1)[0]  # each line end the csv module takes as one
    if not first_line.strip():
        raise UnreadableFile("the first line must be a header row naming the columns")
    try:
        delimiter = csv.Sniffer().sniff(first_line, delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ","  # a single column
    try:
        header = next(csv.reader([first_line], delimiter=delimiter))
    except csv.Error as error:
        raise UnreadableFile(f"the header row is not CSV: {error}") from None
    columns = [_FIELD_OF_COLUMN.get(_column_key(name)) for name in header]
    if not any(columns):
        names = ", ".join(CONTACT_FIELDS)
        raise UnreadableFile(f"no column of the header names a contact field ({names}, First Name, E-mail, …)")
    return delimiter, columns


def read_csv(text: str) -> Iterator[Record]:
    delimiter, columns = _csv_header(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    next(reader)
    start = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:  # e.g. a quote never closed, its field running past the size limit
            yield Record(start, error=f"unreadable CSV from here on: {error}")
            return
        if any(cell.strip() for cell in cells):
            fields: dict[str, str] = {}
            for name, cell in zip(columns, cells, strict=False):
                if name is not None and cell.strip() and name not in fields:
                    fields[name] = cell
            yield Record(start, fields)
        start = reader.line_num + 1


def write_csv(contacts: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A CSV file of the contacts: the header, then a line per contact (quoted where a value needs it)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CONTACT_FIELDS)
    yield buffer.getvalue()
    for contact in contacts:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([contact[name] for name in CONTACT_FIELDS])
        yield buffer.getvalue()


# vCard


def _cards(text: str) -> Iterator[tuple[int, str]]:
    """Each card's first line and text, cut at BEGIN:VCARD / END:VCARD lines (a folded line starts with
    a space or tab, so it is never taken for either)."""
    start: int | None = None
    lines: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if start is None:
            if _BEGIN.match(line):
                start, lines = number, [line]
            continue
        lines.append(line)
        if _END.match(line):
            yield start, "\r\n".join(lines) + "\r\n"
            start = None
        elif _BEGIN.match(line):  # a card never ended: report it, and start over at this one
            yield start, ""
            start, lines = number, [line]
    if start is not None:
        yield start, ""


def _preferred(card: Any, name: str) -> str | None:
    """The value of the card's preferred `name` property (PREF=1 or TYPE=pref), else its first."""
    values = card.contents.get(name, [])
    if not values:
        return None

    def rank(prop: Any) -> int:
        params = {key.upper(): [str(v).lower() for v in value] for key, value in prop.params.items()}
        if "pref" in params.get("TYPE", []):
            return 0
        pref = params.get("PREF", [])
        return int(pref[0]) if pref and pref[0].isdigit() else 101

    value = min(values, key=rank).value
    return value if isinstance(value, str) else None


def _card_fields(card: Any) -> dict[str, str]:
    fields: dict[str, str] = {}
    name = card.contents.get("n")
    if name and isinstance(name[0].value, vobject.vcard.Name):
        given, family = name[0].value.given, name[0].value.family
        fields["first_name"] = " ".join(given) if isinstance(given, list) else given
        fields["last_name"] = " ".join(family) if isinstance(family, list) else family
    full_name = _preferred(card, "fn")
    if full_name and not (fields.get("first_name", "").strip() or fields.get("last_name", "").strip()):
        first, _, last = full_name.strip().rpartition(" ")
        fields["first_name"], fields["last_name"] = (first, last) if first else (last, "")
    email = _preferred(card, "email")
    if email:
        fields["email"] = email
    phone = _preferred(card, "tel")
    if phone:
        fields["phone"] = phone.removeprefix("tel:")
    return {key: value for key, value in fields.items() if value.strip()}


def read_vcards(text: str) -> Iterator[Record]:
    for line, card_text in _cards(text):
        if not card_text:
            yield Record(line, error="the card has no END:VCARD line")
            continue
        try:
            card = vobject.readOne(card_text, allowQP=True)
        except Exception as error:  # vobject raises ParseError, and others on odd input
            yield Record(line, error=f"unreadable vCard: {error}")
            continue
        yield Record(line, _card_fields(card))


def write_vcards(contacts: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A vCard 4.0 file of the contacts, a card each (RFC 6350: text escaped, lines folded at 75 octets).

    Written here rather than by vobject, whose serializer takes about a millisecond a card (a million
    contacts: a quarter of an hour); the tests read what this writes back with vobject."""
    for contact in contacts:
        first, last = _escaped(contact["first_name"]), _escaped(contact["last_name"])
        lines = (
            "BEGIN:VCARD",
            "VERSION:4.0",
            f"N:{last};{first};;;",
            f"FN:{first} {last}",
            f"EMAIL:{_escaped(contact['email'])}",
            f"TEL:{_escaped(contact['phone'])}",
            "END:VCARD",
        )
        yield "".join(_folded(line) for line in lines)


def _escaped(value: str) -> str:
    return (
        value.replace("\\", "\\\\")
        .replace(",", "\\,")
        .replace(";", "\\;")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def _folded(line: str) -> str:
    """The content line ended with CRLF and folded so that no line is over 75 octets (never inside a character)."""
    if len(line.encode()) <= 75:
        return line + "\r\n"
    parts: list[str] = []
    part, size, limit = "", 0, 75
    for character in line:
        width = len(character.encode())
        if size + width > limit:
            parts.append(part)
            part, size, limit = "", 0, 74  # a continuation line starts with a space
        part += character
        size += width
    parts.append(part)
    return "\r\n ".join(parts) + "\r\n"
