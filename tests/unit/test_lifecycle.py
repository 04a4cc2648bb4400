from __future__ import annotations

import pytest

from loadbay.domain.lifecycle import FINAL, TRANSITIONS, Event, Status, next_status
from loadbay.errors import InvalidTransition


def test_happy_paths_follow_the_table() -> None:
    status = Status.OPEN
    for event in (Event.SUBMIT, Event.START, Event.APPLY, Event.COMPLETE):
        status = next_status(status, event)
    assert status == Status.COMPLETED
    assert next_status(next_status(Status.VALIDATING, Event.VALIDATED), Event.PROCESS) == Status.PROCESSING


def test_final_statuses_allow_nothing_but_clearing_an_error() -> None:
    for (status, event), _target in TRANSITIONS.items():
        if status in FINAL:
            assert (status, event) == (Status.ERROR, Event.CLEAR)


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.CANCELLED, Status.CLEARED])
def test_refused_move_names_the_status(status: Status) -> None:
    with pytest.raises(InvalidTransition, match=f"cannot cancel a batch that is {status.value}"):
        next_status(status, Event.CANCEL)


def test_refusal_lists_what_is_allowed() -> None:
    with pytest.raises(InvalidTransition, match=r"allowed now: cancel, clear, submit"):
        next_status(Status.OPEN, Event.PROCESS)


def test_a_client_cannot_process_a_batch_still_validating() -> None:
    with pytest.raises(InvalidTransition):
        next_status(Status.VALIDATING, Event.PROCESS)
