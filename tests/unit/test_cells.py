"""Formula protection in result files, and its undoing when a result file is sent again."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from loadbay.domain.cells import protect, unprotect
from loadbay.readers import Columns, ReadOptions, open_reader

COLUMNS = Columns(("name", "city", "balance"), required=("name",))


def test_cells_a_spreadsheet_would_run_are_protected_and_numbers_are_not() -> None:
    assert protect("=1+1") == "'=1+1"
    assert protect("+Plus Corp") == "'+Plus Corp"
    assert protect("@home") == "'@home"
    assert protect("-2+3") == "'-2+3"
    assert protect("\tx") == "'\tx"
    assert protect("-5") == "-5"
    assert protect("-12.50") == "-12.50"
    assert protect("plain") == "plain"
    assert protect("'quoted") == "'quoted"
    assert protect("'=x") == "''=x"  # so that undoing it gives '=x back, not =x
    assert protect("") == ""


@given(st.text(alphabet=st.sampled_from("'=+-@\t\r5.ab"), max_size=6) | st.text())
def test_unprotect_undoes_protect(value: str) -> None:
    assert unprotect(protect(value)) == value


def read(data: str, options: ReadOptions | None = None) -> tuple[list[dict[str, str]], list[str]]:
    reader = open_reader(io.BytesIO(data.encode()), "csv", COLUMNS, options=options or ReadOptions())
    return [r.values for r in reader], reader.warnings


def test_a_result_file_sent_again_is_read_as_the_customer_first_sent_it() -> None:
    sent = "name,city,balance\n=1+1,@home,-5\n+Plus Corp,'=x,1\n"
    result = (
        "name,city,balance,loadbay_status,loadbay_action,loadbay_entity_id,loadbay_error_code,"
        "loadbay_error_message\r\n"
        "'=1+1,'@home,-5,invalid,,,INVALID_EMAIL,'-x\r\n"
        "'+Plus Corp,''=x,1,failed,,,APPLY_ERROR,boom\r\n"
    )
    again, warnings = read(result, ReadOptions(refuse_unknown=True))
    assert again == read(sent)[0]
    assert again[1] == {"name": "+Plus Corp", "city": "'=x", "balance": "1"}
    assert warnings == []  # loadbay's own columns are no unknown columns


def test_a_file_without_result_columns_is_read_as_sent() -> None:
    values, _ = read("name,city\n'+Plus Corp,''=x\n")
    assert values == [{"name": "'+Plus Corp", "city": "''=x"}]


def test_any_result_column_marks_a_result_file() -> None:
    values, warnings = read("name,LOADBAY_ERROR_CODE,note\n'=x,E,y\n")
    assert values == [{"name": "=x"}]
    assert warnings == ["unknown column 'note' ignored"]
