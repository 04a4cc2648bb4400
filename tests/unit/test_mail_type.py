"""The `mail.job` type (TYPES.md, mail): its rules and codes, the PDF inspection, the bulk
apply, the Click2Mail XML translation, and the tracking feed loader (on SQLite)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from loadbay.core.types import ApplyContext
from loadbay.db import repository as repo
from loadbay.db.engine import Database
from loadbay.db.tables import mail_jobs, metadata
from loadbay.domain.models import Batch
from loadbay.domain.records import Action, StagedRecord
from loadbay.errors import InvalidInput, MissingColumn
from loadbay.profiles.click2mail import manifest_items
from loadbay.types.mail import MailJobType, document_pages, pdf_pages
from loadbay.types.mail_tracking import TrackingEvent, load_tracking, tracking_page
from loadbay.xmlsafe import parse_xml
from tests.support.pdfs import pdf

mail = MailJobType()
ADDRESS = {"name": "Ann Lee", "address1": "1 Main St", "city": "Arlington", "postalCode": "22201"}


def job(**fields: Any) -> dict[str, Any]:
    return {"startingPage": 1, "endingPage": 2, "recipients": [ADDRESS]} | fields


def codes(raw: dict[str, Any]) -> dict[str | None, str]:
    data, errors = mail.validate(raw)
    assert (data is None) == bool(errors)
    return {e.field: e.code for e in errors}


def ctx(pages: int | None = 3, *, test: bool = False, batch_id: int = 1) -> ApplyContext:
    options = {} if pages is None else {"attachments": {"document": {"pages": pages, "size": 1}}}
    return ApplyContext(account_id=1, batch_id=batch_id, test=test, options=options)


def staged(index: int, raw: dict[str, Any]) -> StagedRecord:
    data, errors = mail.validate(raw)
    return StagedRecord(index, None, raw, data, errors)


# validation ----------------------------------------------------------------


def test_a_job_from_xml_text_is_typed_and_blank_elements_are_dropped() -> None:
    raw = {
        "startingPage": "1",
        "endingPage": " 2 ",
        "printProductionOptions": {"documentClass": "Letter 8.5 x 11", "color": None},
        "recipients": [ADDRESS | {"address2": "  ", "organization": None}],
        "unknownElement": "ignored",
    }
    data, errors = mail.validate(raw)
    assert errors == ()
    assert data == {
        "startingPage": 1,
        "endingPage": 2,
        "printProductionOptions": {"documentClass": "Letter 8.5 x 11"},
        "recipients": [ADDRESS],
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (job(startingPage=3, endingPage=2), {"endingPage": "PAGE_RANGE_OUT_OF_DOCUMENT"}),
        (job(startingPage=0), {"startingPage": "PAGE_RANGE_OUT_OF_DOCUMENT"}),
        (job(recipients=[]), {"recipients": "NO_RECIPIENTS"}),
        ({"startingPage": 1, "endingPage": 1}, {"recipients": "NO_RECIPIENTS"}),
        (job(recipients=[ADDRESS | {"name": None}]), {"recipients": "INCOMPLETE_ADDRESS"}),
        (job(recipients=[ADDRESS | {"address1": ""}]), {"recipients": "INCOMPLETE_ADDRESS"}),
        (job(recipients=[ADDRESS | {"city": None}]), {"recipients": "INCOMPLETE_ADDRESS"}),
        (job(recipients=[ADDRESS | {"postalCode": " "}]), {"recipients": "INCOMPLETE_ADDRESS"}),
        (job(recipients=[ADDRESS | {"name": "x" * 101}]), {"recipients.0.name": "TOO_LONG"}),
        (job(startingPage="one"), {"startingPage": "INVALID_VALUE"}),
        ({"endingPage": 2, "recipients": [ADDRESS]}, {"startingPage": "REQUIRED"}),
    ],
)
def test_each_rule_has_its_code(raw: dict[str, Any], expected: dict[str, str]) -> None:
    assert codes(raw) == expected


def test_an_organization_names_a_recipient_as_well_as_a_name() -> None:
    organization = ADDRESS | {"name": None, "organization": "Click2Mail"}
    assert codes(job(recipients=[organization])) == {}


def test_incomplete_address_says_which_recipient_lacks_what() -> None:
    _data, errors = mail.validate(job(recipients=[ADDRESS, {"name": "B", "address1": "2 St"}]))
    assert errors[0].message == "recipients: recipient 2 lacks city, postalCode"


def test_jobs_have_no_key_of_their_own() -> None:
    data, _errors = mail.validate(job())
    assert data is not None
    assert mail.external_id(job()) is None and mail.record_key(data) is None
    assert mail.attachments == {"document": "the PDF the jobs print from"}


def test_jobs_are_shown_by_their_position_and_described_by_click2mail() -> None:
    """What a client sees where a record's key is shown (the dashboard, the native errors API),
    and the page the dashboard links to: declared by the type, not known by either."""
    assert [mail.shown_key(i, None) for i in (0, 1, 41)] == ["job-1", "job-2", "job-42"]
    assert (mail.docs.path, mail.docs.title) == ("/compat/click2mail/docs", "Click2Mail API reference")
    assert "sent through the Click2Mail API" in mail.docs.how_sent


# the document and the page-range check ---------------------------------------


def test_pdf_pages_counts_the_pages() -> None:
    assert pdf_pages(io.BytesIO(pdf(3))) == 3
    assert mail.inspect_attachment("document", io.BytesIO(pdf(2))) == {"pages": 2}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"hello, not a pdf", "lacks the %PDF- header"),
        (b"", "lacks the %PDF- header"),
        (pdf(3)[:200], "cannot be read"),
        (pdf(0), "has no pages"),
    ],
)
def test_a_body_that_is_not_a_usable_pdf_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason) as caught:
        pdf_pages(io.BytesIO(body))
    assert caught.value.code == "INVALID_PDF"


def test_check_refuses_ranges_beyond_the_document() -> None:
    records = [staged(0, job()), staged(1, job(startingPage=2, endingPage=4)), staged(2, job(recipients=[]))]
    checked = mail.check(None, ctx(pages=3), records)  # type: ignore[arg-type]
    assert checked[0] is records[0] and checked[2] is records[2]
    assert checked[1].data is None
    error = checked[1].errors[0]
    assert (error.code, error.field) == ("PAGE_RANGE_OUT_OF_DOCUMENT", "endingPage")
    assert error.message == "pages 2-4 are outside the document, which has 3 page(s)"


def test_without_a_document_every_range_is_outside() -> None:
    assert document_pages({}) == 0
    checked = mail.check(None, ctx(pages=None), [staged(0, job())])  # type: ignore[arg-type]
    assert checked[0].errors[0].code == "PAGE_RANGE_OUT_OF_DOCUMENT"


# apply and tracking on a real (SQLite) database ----------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'mail.db'}")
    metadata.create_all(database.engine)
    yield database
    database.dispose()


def new_batch(db: Database, *, test: bool = False) -> tuple[int, int]:
    """(account id, batch id) of a fresh mail batch."""
    with db.write() as conn:
        account = repo.insert_account(conn, "acme", test)
        values = {"account_id": account.id, "type": "mail.job", "test": test, "process_mode": "auto"}
        batch_id = repo.insert_batch(conn, values | {"fingerprint": "x"})
    return account.id, batch_id


def apply(db: Database, raws: list[dict[str, Any]], *, test: bool = False) -> tuple[int, list[str]]:
    account_id, batch_id = new_batch(db, test=test)
    context = ApplyContext(account_id, batch_id, test, {})
    with db.write() as conn:
        applied = mail.apply(conn, context, [staged(i, raw) for i, raw in enumerate(raws)])
    assert all(a.action == Action.CREATED for a in applied)
    return batch_id, [str(a.entity_id) for a in applied]


def test_apply_creates_one_job_per_record_in_one_statement(db: Database) -> None:
    batch_id, ids = apply(db, [job(), job(startingPage=2, endingPage=3)])
    with db.read() as conn:
        rows = conn.execute(select(mail_jobs).order_by(mail_jobs.c.record_index)).mappings().all()
    assert [str(r["id"]) for r in rows] == ids
    assert [(r["batch_id"], r["record_index"], r["status"]) for r in rows] == [
        (batch_id, 0, "Queued"),
        (batch_id, 1, "Queued"),
    ]
    assert (rows[1]["starting_page"], rows[1]["ending_page"]) == (2, 3)


def test_a_test_accounts_jobs_are_processed_never_queued(db: Database) -> None:
    _batch_id, _ids = apply(db, [job()], test=True)
    with db.read() as conn:
        assert conn.execute(select(mail_jobs.c.status)).scalar_one() == "Processed"


def feed(*rows: str) -> io.BytesIO:
    return io.BytesIO(("job_id,at,status,location,detail\n" + "\n".join(rows) + "\n").encode())


def test_tracking_feed_stores_events_and_moves_the_job_status(db: Database) -> None:
    batch_id, (first, second) = apply(db, [job(), job()])
    report = load_tracking(
        db,
        feed(
            f"{first},2024-05-01T09:00:00-04:00,Mailed,Arlington VA,",
            f"{first},2024-05-03T15:30:00Z,Delivered,Arlington VA,front door",
            f"{second},2024-05-01T09:00:00-04:00,Mailed,,",
        ),
    )
    assert (report.loaded, report.duplicates, report.refused_count) == (3, 0, 0)
    with db.read() as conn:
        statuses = dict(conn.execute(select(mail_jobs.c.id, mail_jobs.c.status)).all())
    assert statuses == {int(first): "Delivered", int(second): "Mailed"}
    batch = _batch(db, batch_id)
    events = _tracking(db, batch, 0)
    assert [(e.job_id, e.status, e.location) for e in events] == [
        (int(first), "Mailed", "Arlington VA"),
        (int(first), "Delivered", "Arlington VA"),
        (int(second), "Mailed", None),
    ]
    assert _tracking(db, batch, events[1].id) == events[2:]


def test_loading_the_same_feed_twice_stores_nothing_new(db: Database) -> None:
    _batch_id, (first,) = apply(db, [job()])
    rows = (f"{first},2024-05-01T09:00:00-04:00,Mailed,,", f"{first},2024-05-01T13:00:00Z,Mailed,,")
    assert load_tracking(db, feed(*rows)).loaded == 1  # the same moment, written in two offsets
    again = load_tracking(db, feed(*rows))
    assert (again.loaded, again.duplicates) == (0, 2)


def test_unknown_jobs_test_accounts_and_bad_rows_are_refused_and_reported(db: Database) -> None:
    _live, (live_job,) = apply(db, [job()])
    test_batch, (test_job,) = apply(db, [job()], test=True)
    report = load_tracking(
        db,
        feed(
            "999999,2024-05-01T09:00:00Z,Mailed,,",
            f"{test_job},2024-05-01T09:00:00Z,Mailed,,",
            f"{live_job},2024-05-01T09:00:00,Mailed,,",
            f"{live_job},yesterday,Mailed,,",
            f"{live_job},2024-05-01T09:00:00Z,,,",
            f"x{live_job},2024-05-01T09:00:00Z,Mailed,,",
            f"{live_job},2024-05-01T09:00:00Z,{'S' * 41},,",
            f"{live_job},2024-05-01T09:00:00Z,Mailed,,",
        ),
    )
    assert report.loaded == 1 and report.refused_count == 7
    assert [(r.row, r.code) for r in report.refused] == [
        (1, "UNKNOWN_JOB"),
        (2, "TEST_ACCOUNT"),
        (3, "INVALID_ROW"),
        (4, "INVALID_ROW"),
        (5, "INVALID_ROW"),
        (6, "INVALID_ROW"),
        (7, "INVALID_ROW"),
    ]
    assert "has no offset" in report.refused[2].message
    assert _tracking(db, _batch(db, test_batch), 0) == []


def test_a_feed_without_its_required_columns_is_refused_whole(db: Database) -> None:
    with pytest.raises(MissingColumn, match="status"):
        load_tracking(db, io.BytesIO(b"job_id,at\n1,2024-05-01T09:00:00Z\n"))


def _batch(db: Database, batch_id: int) -> Any:
    with db.read() as conn:
        return repo.get_batch(conn, None, batch_id)


# the Click2Mail XML translation ----------------------------------------------


BATCH_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<batch xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <filename>batchTest.pdf</filename>
  <appSignature>PostmanC2MTests</appSignature>
  <job>
    <startingPage>1</startingPage>
    <endingPage>2</endingPage>
    <printProductionOptions>
      <documentClass>Letter 8.5 x 11</documentClass><color></color>
    </printProductionOptions>
    <returnAddress><name>Sender</name><address1>9 Side St</address1></returnAddress>
    <recipients>
      <address>
        <name>Ann</name><address1>1 Main St</address1><city>Arlington</city><postalCode>22201</postalCode>
      </address>
      <address><organization>Acme</organization><address1>2 Main St</address1></address>
    </recipients>
  </job>
  <job><startingPage>3</startingPage><endingPage>3</endingPage></job>
</batch>"""


def test_each_job_element_becomes_one_item() -> None:
    items = manifest_items(parse_xml(BATCH_XML))
    assert items == [
        {
            "startingPage": "1",
            "endingPage": "2",
            "printProductionOptions": {"documentClass": "Letter 8.5 x 11", "color": None},
            "returnAddress": {"name": "Sender", "address1": "9 Side St"},
            "recipients": [
                {"name": "Ann", "address1": "1 Main St", "city": "Arlington", "postalCode": "22201"},
                {"organization": "Acme", "address1": "2 Main St"},
            ],
        },
        {"startingPage": "3", "endingPage": "3"},
    ]
    assert codes(items[0]) == {"recipients": "INCOMPLETE_ADDRESS"}


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"<jobs><job/></jobs>", "NOT_A_BATCH"), (b"<batch><filename>a.pdf</filename></batch>", "NO_JOBS")],
)
def test_a_document_that_is_not_a_batch_is_refused(body: bytes, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        manifest_items(parse_xml(body))
    assert caught.value.code == code


def _tracking(db: Database, batch: Batch, after_id: int) -> list[TrackingEvent]:
    with db.read() as conn:
        return tracking_page(conn, batch, after_id, 10)
