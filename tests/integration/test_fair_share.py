"""Fair share: one account's big import does not keep another account's small one waiting.

A real server with one worker thread (so that nothing but the order of the work decides),
chunks of 50: account A submits 20,000 customers; once A's chunks are being applied, account
B submits 100. B is validated before A's next chunk (its account had nothing in progress)
and its two chunks go before A's (fewest records applied first), so B completes while A
still has most of its chunks left.
"""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_crash_safety import customer_csv, submit_file, wait_until
from tests.support.servers import start_server, wait_final

ENV = {"LOADBAY_CHUNK_SIZE": "50"}


def test_a_small_batch_of_another_account_goes_before_a_big_one(database_url: str, tmp_path: Path) -> None:
    api = start_server(database_url, tmp_path / "data", workers=1, env=ENV)
    try:
        with api.client(api.account("big")) as big, api.client(api.account("small")) as small:
            bulk = submit_file(big, customer_csv(20_000))
            wait_until(big, bulk, lambda b: b["counts"]["succeeded"] > 0)
            quick = submit_file(small, customer_csv(100))
            done = wait_final(small, quick, timeout=120)
            at_that_time = big.get(f"/v1/batches/{bulk}").json()
            final = wait_final(big, bulk, timeout=300)
        assert (
            done["status"] == "completed" and done["counts"]["succeeded"] + done["counts"]["invalid"] == 100
        )
        assert at_that_time["status"] != "completed"
        applied = at_that_time["counts"]["succeeded"] + at_that_time["counts"]["invalid"]
        assert applied < 10_000, f"the small batch waited for half the big one ({applied} of 20,000 records)"
        assert final["status"] == "completed" and final["counts"]["total"] == 20_000
    finally:
        api.stop()
