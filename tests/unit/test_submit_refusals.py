"""A submit refused for want of data says which batch has none as an attribute, not only in
its message: a profile names that batch in its own words (eBill's BatchFinalize names the
line-item batch process whose file never came) without parsing the core's English."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loadbay.config import Settings
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.domain.models import Account, NewBatch
from loadbay.errors import NoData
from loadbay.types import default_registry

TYPE = "billing.customer"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[BatchService]:
    rt = Runtime.build(
        Settings(data_dir=tmp_path, secret_key="test"), default_registry(), base_url="http://x"
    )
    yield BatchService(rt)
    rt.close()


@pytest.fixture
def account(service: BatchService) -> Account:
    return service.create_account("a")[0]


def _refused(service: BatchService, account: Account, batch_id: int) -> NoData:
    with pytest.raises(NoData) as refused:
        service.submit(account, batch_id)
    return refused.value


def test_no_data_names_the_batch(service: BatchService, account: Account) -> None:
    empty, _ = service.create(account, NewBatch(TYPE))
    pages, _ = service.create(account, NewBatch(TYPE), items=[])
    for batch_id in (empty.id, pages.id):
        refused = _refused(service, account, batch_id)
        assert (refused.code, refused.batch_id) == ("NO_DATA", batch_id)


def test_a_file_never_uploaded_names_its_batch(service: BatchService, account: Account) -> None:
    """NO_DATA when the batch has nothing else, FILE_NOT_UPLOADED when it has; a child's
    missing file is refused in its parent's submit, and names the child."""
    awaited, _, _ = service.create_with_upload(account, NewBatch(TYPE), "a.csv")
    refused = _refused(service, account, awaited.id)
    assert (refused.code, refused.batch_id) == ("NO_DATA", awaited.id)

    upload = service.start_upload(account, awaited.id, "b.csv", "text/csv")
    upload.write(b"customer_number,name\nB1,Bee\n")
    upload.finish()
    refused = _refused(service, account, awaited.id)
    assert (refused.code, refused.batch_id) == ("FILE_NOT_UPLOADED", awaited.id)

    parent, _ = service.create(account, NewBatch(TYPE), items=[{"customer_number": "P1", "name": "P"}])
    child, _, _ = service.create_with_upload(account, NewBatch(TYPE, parent_id=parent.id), "c.csv")
    refused = _refused(service, account, parent.id)
    assert (refused.code, refused.batch_id) == ("NO_DATA", child.id)


def test_a_batch_submitted_on_create_has_no_id_to_name(service: BatchService, account: Account) -> None:
    """The refusal undoes the create: there is no batch, and the id went to no batch."""
    with pytest.raises(NoData) as refused:
        service.create(account, NewBatch(TYPE), submit=True)
    assert (refused.value.code, refused.value.batch_id) == ("NO_DATA", None)
    assert service.list_batches(account, {}, None, 10) == []
