"""The Centrapay seed's (seeds/002) example bodies, verbatim: the Create Batch request (the
curl's `-d` text), and the two Example Response Payloads (after create, after GET), with the
model table's field names.

The seed's example answers show an `accountId` that is not the one its request sent, and
name the number of items `count` where its model table says `totalCount`; loadbay echoes
the request's accountId and sends both names.
"""

from __future__ import annotations

__all__ = [
    "SEED_CREATE_TEXT",
    "SEED_CREATED_TEXT",
    "SEED_GOT_TEXT",
    "SEED_MODEL_FIELDS",
    "SEED_URL",
]

SEED_URL = "https://azurebuckets.com/1234"

# Create Batch: the body of `curl -X POST https://service.centrapay.com/api/batches -d '…'`
SEED_CREATE_TEXT = """{
"type": "farmlands-external-asset",
"url": "https://azurebuckets.com/1234",
"accountId": "C4QnjXvj8At6SMsEN4LRi9",
"test": true
}"""

# Create Batch: Example Response Payload
SEED_CREATED_TEXT = """{
"id": "AVH5uG4gRLYK6YR8JyrViN",
"accountId": "1mdj7bj95gjo92r0ux6wfy69gj3h77",
"status": "created",
"type": "farmlands-external-asset",
"url": "https://azurebuckets.com/1234",
"test": true,
"count": "0",
"errorCount": "0",
"errors": [
]
}"""

# Get Batch: Example Response Payload
SEED_GOT_TEXT = """{
"id": "AVH5uG4gRLYK6YR8JyrViN",
"accountId": "1mdj7bj95gjo92r0ux6wfy69gj3h77",
"status": "complete",
"type": "farmlands-external-asset",
"url": "https://azurebuckets.com/1234",
"test": true,
"count": "160000",
"errorCount": "1",
"errors": [
{
"externalId": "69d64d80-f9bd-4057-bc5b-1c55685d995b",
"index": "1954",
"message": "INVALID_BARCODE_LENGTH"
}
]
}"""

# Models > Batch > Fields, in the table's order
SEED_MODEL_FIELDS = ["id", "status", "type", "totalCount", "errorCount", "errors", "test"]
