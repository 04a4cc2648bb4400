"""An upload whose keeping fails leaves nothing of itself in the store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from loadbay.config import Settings
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.domain.models import NewBatch
from loadbay.errors import Busy
from loadbay.types import default_registry


def test_an_upload_whose_transaction_fails_leaves_no_part_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client is answered 503 BUSY (a lock not granted in time) and sends the file again;
    each such answer left the upload's whole `.part` file behind (and on S3 its parts)."""
    rt = Runtime.build(
        Settings(data_dir=tmp_path, secret_key="test"), default_registry(), base_url="http://x"
    )
    try:
        service = BatchService(rt)
        account, _ = service.create_account("a")
        batch, _ = service.create(account, NewBatch(type="billing.customer"))
        upload = service.start_upload(account, batch.id, "a.csv", "text/csv")
        upload.write(b"customer_number,name\nA,B\n" * 1000)
        assert list(tmp_path.rglob("*.part")), "(the upload is spooled to a part file)"

        @contextmanager
        def busy() -> Iterator[None]:
            raise Busy("the database is locked")
            yield

        monkeypatch.setattr(rt.db, "write", busy)
        with pytest.raises(Busy):
            upload.finish()
        assert list(tmp_path.rglob("*.part")) == []
    finally:
        rt.close()
