"""The Alliant seed's (seeds/003) payloads, verbatim, for the catalog type and profile tests."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["SEED_CREATE", "SEED_ITEM", "seed_item"]

SEED_CREATE: dict[str, Any] = {
    "importFileName": "APIUserXs",
    "description": "UserX Import from Alliant API",
    "pageSize": 2,
    "totalItems": 2,
}

_REF = {"id": "exampleID"}

SEED_ITEM: dict[str, Any] = {
    "adminClassReference": {"id": "exampleID"},
    "comment": "Example Comment",
    "description": "Pebbles 2: Secret of the Ooze",
    "id": "004 Product",
    "ipRightsBearingFlag": True,
    "parentReference": {"id": "idOfParent"},
    "royaltyBearingFlag": True,
    "ud_userDefinedStringField": "ud field Value",
    "ud_userDefinedNumberField": 0,
    "ud_userDefinedReference": {"id": "exampleID"},
    "udLookup_LookupUDField": {
        "udfLookupItems": [
            {
                "amount1Range": "1:3",
                "amount2Range": "2:4",
                "contact1Reference": dict(_REF),
                "contact2Reference": dict(_REF),
                "contact3Reference": dict(_REF),
                "contact4Reference": dict(_REF),
                "endActualPeriodReference": dict(_REF),
                "endOtherPeriodReference": dict(_REF),
                "endPostedPeriodReference": dict(_REF),
                "fromDate": "2019-08-24T14:15:22Z",
                "price1Range": "4.21:30.45",
                "price2Range": "5.24:532.21",
                "rate1Range": "2.3:5.2",
                "rate2Range": "8.6:45.2",
                "rate3Range": "10.3:87.0",
                "sortOrderNumber": 1,
                "startActualPeriodReference": dict(_REF),
                "startOtherPeriodReference": dict(_REF),
                "startPostedPeriodReference": dict(_REF),
                "text1": "example text",
                "text2": "example test",
                "toDate": "2019-08-24T14:15:22Z",
                "ud_LookupUDField": "exampleUDFValue",
                "udKeyXHierarchyTypeReference": dict(_REF),
                "udKeyXListReference": {"description": "exampleDescription"},
                "udKeyXReference": dict(_REF),
                "unit1Range": "5:200",
                "unit2Range": "5:100",
            }
        ]
    },
    "user1BOMHeaders": [
        {
            "allocationMethodReference": {"registeredProdedureName": "NameOfProcedure"},
            "allocationUDFReference": {"name": "udfName"},
            "effectiveFromDate": "2021-08-06T00:00:00",
            "effectiveToDate": "9999-12-31T23:59:59",
            "user1BOMDetails": [
                {
                    "allocationPercent": 100,
                    "largeSortOrderNumber": 1,
                    "quantity": 1,
                    "udKey1Reference": {"id": "exampleID"},
                }
            ],
        }
    ],
}


def seed_item(**changes: Any) -> dict[str, Any]:
    """A deep copy of the seed's item with top-level `changes` (None removes a key)."""
    item = copy.deepcopy(SEED_ITEM)
    for key, value in changes.items():
        if value is None:
            item.pop(key, None)
        else:
            item[key] = value
    return item
