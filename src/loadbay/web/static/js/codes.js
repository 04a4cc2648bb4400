// What each error code means, in words for the person who fixes the file.

const CODES = {
  REQUIRED: "A required value is missing.",
  TOO_LONG: "The value is longer than this column allows.",
  INVALID_EMAIL: "Not an email address.",
  INVALID_DECIMAL: "Not a number, or too many decimal places (amounts have at most 2).",
  INVALID_DATE: "Not a date written as YYYY-MM-DD.",
  INVALID_TIMESTAMP: "Not a date and time such as 2026-03-01T09:30:00Z.",
  INVALID_VALUE: "A value this column does not take (the message says why).",
  INVALID_COUNTRY: "Not a two-letter country code (ISO 3166), such as US or GB.",
  INVALID_CURRENCY: "Not a three-letter currency code (ISO 4217), such as USD or EUR.",
  INVALID_DUE_DATE: "The due date is before the invoice date.",
  DUPLICATE_KEY: "The same key appears earlier in this file; only the first one is imported.",
  UNKNOWN_CUSTOMER: "There is no such customer: import the customer first.",
  UNKNOWN_INVOICE: "There is no such invoice.",
  INVOICE_NOT_OPEN: "The invoice can no longer be changed (it is not open, or was paid or credited).",
  AMOUNT_MISMATCH: "The amounts do not add up.",
  ZERO_BALANCE: "The invoice has nothing left to write off.",
  AMOUNT_EXCEEDS_BALANCE: "The amount is more than what is left open.",
  CUSTOMER_NOT_ACTIVE: "The customer is not active.",
  MALFORMED_ROW: "The row has more cells than the header row has columns.",
  INVALID_JSON: "The line is not valid JSON.",
  APPLY_ERROR: "The database refused this record.",
  RETRIES_EXHAUSTED: "Not imported: applying its part of the file failed on every try.",
  UNPROCESSED: "Not imported: the batch was cancelled first.",
  MISSING_COLUMN: "A required column is missing from the header row: add it (the new-import page lists the columns).",
  BAD_ENCODING: "The file is not UTF-8 text. Save it as “CSV UTF-8” and import it again.",
  MALFORMED_FILE: "The file is broken as a whole (for example an unclosed quote). Check it in an editor.",
  FETCH_FAILED: "The file could not be fetched from its URL.",
  FETCH_REFUSED: "loadbay may not fetch from that address (private and loopback addresses are refused).",
  INVALID_BARCODE: "Not a valid barcode.",
  NEGATIVE_BALANCE: "The balance cannot be negative.",
  STALE_STATUS: "Skipped: a newer report for this terminal is stored already.",
  UNKNOWN_PARENT: "The record it belongs to is not there.",
};

export function explain(code) {
  return CODES[code] || "";
}
