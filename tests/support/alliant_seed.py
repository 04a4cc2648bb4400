"""The Alliant seed's (seeds/003) example bodies, verbatim, for the catalog type and profile tests.

The seed is a rendered API reference: its JSON examples carry the renderer's list markers
(`{- "importFileName": …`, `}, - "comment": …`, a `- ` before each array element). The
texts below are copied from the seed as they are; `seed_json` drops the markers (nothing
else) to read them, and the payloads the tests use (SEED_CREATE, SEED_PAGE, SEED_ITEM) are
read from them.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

__all__ = [
    "SEED_CREATE",
    "SEED_CREATED",
    "SEED_CREATED_TEXT",
    "SEED_CREATE_TEXT",
    "SEED_ITEM",
    "SEED_PAGE",
    "SEED_PAGED",
    "SEED_PAGED_TEXT",
    "SEED_PAGE_TEXT",
    "SEED_READ",
    "SEED_READ_TEXT",
    "seed_item",
    "seed_json",
    "seed_text",
]

_MARKER = re.compile(r"(^|[{,]\s*)- ", re.MULTILINE)  # the renderer's "- " before a member or element


def seed_json(text: str) -> Any:
    """A JSON example of the seed, read as JSON once its list markers are dropped."""
    return json.loads(seed_text(text))


def seed_text(text: str) -> str:
    """The example as the JSON text it renders: the same text without the list markers."""
    return _MARKER.sub(r"\1", text)


# Create an Import UserX Batch: "- Payload"
SEED_CREATE_TEXT = """\
{- "importFileName": "APIUserXs",
- "description": "UserX Import from Alliant API",
- "pageSize": 2,
- "totalItems": 2
}
"""

# its 201 answer
SEED_CREATED_TEXT = """\
{- "result": {
- "batchId": 1,
- "jobQueueGuid": "e29a07ac-4391-4846-9cf6-492fbba5b2dc"
}, - "errors": [ ],
- "warnings": [ ],
- "hasErrors": false,
- "hasWarnings": false
}
"""

# Submit UserXs for an Import UserX Batch: "- Payload"
SEED_PAGE_TEXT = """\
{- "pageNumber": 0,
- "items": [
- {
- "adminClassReference": {
- "id": "exampleID"
}, - "comment": "Example Comment",
- "description": "Pebbles 2: Secret of the Ooze",
- "id": "004 Product",
- "ipRightsBearingFlag": true,
- "parentReference": {
- "id": "idOfParent"
}, - "royaltyBearingFlag": true,
- "ud_userDefinedStringField": "ud field Value",
- "ud_userDefinedNumberField": 0,
- "ud_userDefinedReference": {
- "id": "exampleID"
}, - "udLookup_LookupUDField": {
- "udfLookupItems": [
- {
- "amount1Range": "1:3",
- "amount2Range": "2:4",
- "contact1Reference": {
- "id": "exampleID"
}, - "contact2Reference": {
- "id": "exampleID"
}, - "contact3Reference": {
- "id": "exampleID"
}, - "contact4Reference": {
- "id": "exampleID"
}, - "endActualPeriodReference": {
- "id": "exampleID"
}, - "endOtherPeriodReference": {
- "id": "exampleID"
}, - "endPostedPeriodReference": {
- "id": "exampleID"
}, - "fromDate": "2019-08-24T14:15:22Z",
- "price1Range": "4.21:30.45",
- "price2Range": "5.24:532.21",
- "rate1Range": "2.3:5.2",
- "rate2Range": "8.6:45.2",
- "rate3Range": "10.3:87.0",
- "sortOrderNumber": 1,
- "startActualPeriodReference": {
- "id": "exampleID"
}, - "startOtherPeriodReference": {
- "id": "exampleID"
}, - "startPostedPeriodReference": {
- "id": "exampleID"
}, - "text1": "example text",
- "text2": "example test",
- "toDate": "2019-08-24T14:15:22Z",
- "ud_LookupUDField": "exampleUDFValue",
- "udKeyXHierarchyTypeReference": {
- "id": "exampleID"
}, - "udKeyXListReference": {
- "description": "exampleDescription"
}, - "udKeyXReference": {
- "id": "exampleID"
}, - "unit1Range": "5:200",
- "unit2Range": "5:100"
}
]
}, - "user1BOMHeaders": [
- {
- "allocationMethodReference": {
- "registeredProdedureName": "NameOfProcedure"
}, - "allocationUDFReference": {
- "name": "udfName"
}, - "effectiveFromDate": "2021-08-06T00:00:00",
- "effectiveToDate": "9999-12-31T23:59:59",
- "user1BOMDetails": [
- {
- "allocationPercent": 100,
- "largeSortOrderNumber": 1,
- "quantity": 1,
- "udKey1Reference": {
- "id": "exampleID"
}
}
]
}
]
}
]
}
"""

# its 200 answer
SEED_PAGED_TEXT = """\
{- "result": { },
- "errors": [ ],
- "warnings": [ ],
- "hasErrors": false,
- "hasWarnings": false
}
"""

# Read Import UserX Batch Data: its 200 answer
SEED_READ_TEXT = """\
{- "result": {
- "importFileName": "userxs",
- "importFileSID": 140,
- "description": "UserX Import from Alliant API",
- "fileDownloadNumber": null,
- "pageSize": 2,
- "totalItems": 2,
- "batchId": 22,
- "pageNumber": 0,
- "receivedItems": 2,
- "createdDateTime": "2022-27-25",
- "items": [
- {
- "adminClassReference": {
- "id": "exampleID"
}, - "comment": "Example Comment",
- "description": "Pebbles 2: Secret of the Ooze",
- "id": "004 Product",
- "ipRightsBearingFlag": true,
- "parentReference": {
- "id": "idOfParent"
}, - "royaltyBearingFlag": true,
- "ud_userDefinedStringField": "ud field Value",
- "ud_userDefinedNumberField": 0,
- "ud_userDefinedReference": {
- "id": "exampleID"
}, - "udLookup_LookupUDField": {
- "udfLookupItems": [
- {
- "amount1Range": "1:3",
- "amount2Range": "2:4",
- "contact1Reference": {
- "id": "exampleID"
}, - "contact2Reference": {
- "id": "exampleID"
}, - "contact3Reference": {
- "id": "exampleID"
}, - "contact4Reference": {
- "id": "exampleID"
}, - "endActualPeriodReference": {
- "id": "exampleID"
}, - "endOtherPeriodReference": {
- "id": "exampleID"
}, - "endPostedPeriodReference": {
- "id": "exampleID"
}, - "fromDate": "2019-08-24T14:15:22Z",
- "price1Range": "4.21:30.45",
- "price2Range": "5.24:532.21",
- "rate1Range": "2.3:5.2",
- "rate2Range": "8.6:45.2",
- "rate3Range": "10.3:87.0",
- "sortOrderNumber": 1,
- "startActualPeriodReference": {
- "id": "exampleID"
}, - "startOtherPeriodReference": {
- "id": "exampleID"
}, - "startPostedPeriodReference": {
- "id": "exampleID"
}, - "text1": "example text",
- "text2": "example test",
- "toDate": "2019-08-24T14:15:22Z",
- "ud_LookupUDField": "exampleUDFValue",
- "udKeyXHierarchyTypeReference": {
- "id": "exampleID"
}, - "udKeyXListReference": {
- "description": "exampleDescription"
}, - "udKeyXReference": {
- "id": "exampleID"
}, - "unit1Range": "5:200",
- "unit2Range": "5:100"
}
]
}, - "user1BOMHeaders": [
- {
- "allocationMethodReference": {
- "registeredProdedureName": "NameOfProcedure"
}, - "allocationUDFReference": {
- "name": "udfName"
}, - "effectiveFromDate": "2021-08-06T00:00:00",
- "effectiveToDate": "9999-12-31T23:59:59",
- "user1BOMDetails": [
- {
- "allocationPercent": 100,
- "largeSortOrderNumber": 1,
- "quantity": 1,
- "udKey1Reference": {
- "id": "exampleID"
}
}
]
}
]
}
]
}, - "errors": [ ],
- "warnings": [ ],
- "hasErrors": false,
- "hasWarnings": false
}
"""

SEED_CREATE: dict[str, Any] = seed_json(SEED_CREATE_TEXT)
SEED_CREATED: dict[str, Any] = seed_json(SEED_CREATED_TEXT)
SEED_PAGE: dict[str, Any] = seed_json(SEED_PAGE_TEXT)
SEED_PAGED: dict[str, Any] = seed_json(SEED_PAGED_TEXT)
SEED_READ: dict[str, Any] = seed_json(SEED_READ_TEXT)
SEED_ITEM: dict[str, Any] = SEED_PAGE["items"][0]


def seed_item(**changes: Any) -> dict[str, Any]:
    """A deep copy of the seed's item with top-level `changes` (None removes a key)."""
    item = copy.deepcopy(SEED_ITEM)
    for key, value in changes.items():
        if value is None:
            item.pop(key, None)
        else:
            item[key] = value
    return item
