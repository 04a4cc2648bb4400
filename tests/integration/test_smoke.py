from __future__ import annotations

from tests.support.servers import Server, wait_final


def test_csv_upload_flows_to_completion(server: Server, key: str) -> None:
    with server.client(key) as client:
        batch = client.post("/v1/batches", json={"type": "billing.customer"}).json()
        body = b"customer_number,name\nC1,One\nC2,Two\n"
        r = client.put(f"/v1/batches/{batch['id']}/data", content=body, headers={"Content-Type": "text/csv"})
        assert r.status_code == 200, r.text
        client.post(f"/v1/batches/{batch['id']}/submit").raise_for_status()
        done = wait_final(client, batch["id"])
    assert done["status"] == "completed"
    assert done["counts"]["succeeded"] == 2
