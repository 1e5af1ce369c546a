"""Reading and writing contact files (shared.contact_files): what each record holds and where it starts."""

import pytest

from shared.contact_files import Record, UnreadableFile, check, read, read_csv, read_vcards, write_csv, write_vcards

TRICKY = {
    "first_name": 'Zoë; "Zed", \\ ' + "ü" * 60,
    "last_name": "O'Hara,\nJr.",
    "email": "zoe@example.com",
    "phone": "+353 (1) 234-5678",
}


def test_csv_columns_are_matched_by_their_usual_names_in_any_case_and_spelling() -> None:
    text = (
        "Given Name\tFAMILY NAME\tE-mail 1 - Value\tMobile Phone\tBusiness Phone\tNotes\n"
        "Ada\tLovelace\ta@example.com\t\t+44 1\tx\n"
    )
    assert list(read_csv(text)) == [
        Record(2, {"first_name": "Ada", "last_name": "Lovelace", "email": "a@example.com", "phone": "+44 1"})
    ]


def test_a_csv_record_starts_on_its_own_line_though_an_earlier_one_spans_several() -> None:
    text = 'first_name,last_name\n"Two\nlines",x\n\n,\nThird,y\n'
    assert [(record.line, record.fields) for record in read_csv(text)] == [
        (2, {"first_name": "Two\nlines", "last_name": "x"}),
        (6, {"first_name": "Third", "last_name": "y"}),
    ]


def test_a_csv_field_left_unterminated_past_the_size_limit_is_one_unreadable_record_at_its_start() -> None:
    text = 'email\na@example.com\n"' + "x" * 200_000 + "\n"
    records = list(read_csv(text))
    assert records[0] == Record(2, {"email": "a@example.com"})
    assert records[1].line == 3 and records[1].error is not None and not records[1].fields


def test_a_header_ending_in_a_lone_carriage_return_is_a_header() -> None:
    assert list(read("text/csv", b"email;phone\rada@example.com;+1 555 0100\r")) == [
        Record(2, {"email": "ada@example.com", "phone": "+1 555 0100"})
    ]


@pytest.mark.parametrize(
    ("media_type", "content", "reason"),
    [
        ("text/csv", b"\xe9t\xe9", "not UTF-8"),
        ("text/csv", b"\n\nemail\n", "header row"),
        ("text/csv", b"colour,size\n", "no column"),
        ("text/csv", b"\xc2\x9f\x0e~\r\xc2\x97K\x05", "no column"),  # schemathesis: a lone CR in line 1 was a 500
        ("text/vcard", b"FN:Ada\r\n", "no vCard"),
    ],
)
def test_a_file_we_cannot_read_says_why(media_type: str, content: bytes, reason: str) -> None:
    with pytest.raises(UnreadableFile, match=reason):
        check(media_type, content)


def test_a_vcard_that_never_ends_is_reported_and_the_next_card_still_read() -> None:
    text = "BEGIN:VCARD\nFN:Cut Short\nBEGIN:VCARD\nVERSION:3.0\nN:Hopper;Grace;;;\nEMAIL:g@example.com\nEND:VCARD\n"
    records = list(read_vcards(text))
    assert records[0].line == 1 and records[0].error == "the card has no END:VCARD line"
    assert records[1] == Record(3, {"first_name": "Grace", "last_name": "Hopper", "email": "g@example.com"})


@pytest.mark.parametrize(("writer", "media_type"), [(write_csv, "text/csv"), (write_vcards, "text/vcard")])
def test_what_is_written_reads_back_as_it_was(writer: object, media_type: str) -> None:
    contacts = [TRICKY, {**TRICKY, "email": "two@example.com", "first_name": "李"}]
    content = "".join(writer(contacts)).encode()  # type: ignore[operator]
    assert [record.fields for record in read(media_type, content)] == contacts


def test_written_vcard_lines_are_folded_at_75_octets_without_splitting_a_character() -> None:
    lines = "".join(write_vcards([TRICKY])).encode().split(b"\r\n")
    assert max(len(line) for line in lines) <= 75
    for line in lines:
        line.decode()  # raises if a fold cut a character in two
