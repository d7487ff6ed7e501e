"""The result record: one definition, built by the task runner, read by the controller, a plain tuple on the wire."""

from __future__ import annotations

import pickle
import pickletools

import pytest

from pycrew.control.tasks import Task, decode_result
from pycrew.wire.records import RESULT_FIELDS, ResultRecord
from pycrew.worker.execution import TaskRunner


def _task(fn, *args, name="t"):
    return pickle.dumps((fn, args, {}, None, name, None))


def _boom(message):
    raise ValueError(message)


def _globals(data: bytes) -> list[str]:
    """The classes and functions a pickle refers to by name."""
    return [str(arg) for op, arg, _ in pickletools.genops(data) if op.name in ("GLOBAL", "STACK_GLOBAL", "INST")] + [
        str(arg) for op, arg, _ in pickletools.genops(data) if op.name in ("SHORT_BINUNICODE", "BINUNICODE") and "pycrew" in str(arg)
    ]


def test_a_success_travels_as_a_plain_tuple_of_the_records_fields():
    data = TaskRunner().run(1, _task(abs, -3))
    assert _globals(data) == [], "a result must not refer to pycrew's classes (the wire format is a plain tuple)"
    fields = pickle.loads(data)
    assert type(fields) is tuple and len(fields) == RESULT_FIELDS
    record = ResultRecord.from_wire(fields)
    assert (record.status, record.value, record.error, record.warnings) == ("success", 3, "", [])
    assert record.started is not None and record.finished >= record.started


def test_an_error_carries_its_type_traceback_and_exception():
    record = ResultRecord.from_wire(pickle.loads(TaskRunner().run(2, _task(_boom, "no"))))
    assert (record.status, record.error, record.error_type) == ("error", "no", "ValueError")
    assert "_boom" in record.traceback and isinstance(pickle.loads(record.exception), ValueError)


def test_a_result_too_large_for_the_frame_is_cut_to_fit():
    runner = TaskRunner()
    runner.limit_results(bytes_max=8192, result_max=2000)
    data = runner.run(3, _task(_boom, "x" * 100_000))
    record = ResultRecord.from_wire(pickle.loads(data))
    assert len(data) <= 2000, f"{len(data)} bytes do not fit in 2000"
    assert record.status == "error" and record.exception is None
    assert record.error.startswith("xxx") and record.error.endswith("had to fit in bytes_max=8192]")


@pytest.mark.parametrize("fields", [("success", 1, ""), ["success"] * 9, "success"])
def test_a_payload_that_is_not_a_record_is_refused(fields):
    with pytest.raises(ValueError, match=f"a result record is a tuple of {RESULT_FIELDS} fields"):
        ResultRecord.from_wire(fields)


def test_the_controller_turns_a_malformed_result_into_an_error_saying_so():
    result = decode_result(Task(1, "t", b"", None, True), pickle.dumps(("success", 1, "")), {})
    assert result.status == "error" and f"tuple of {RESULT_FIELDS} fields, got a tuple of 3" in result.error, result.error


def test_the_controller_reads_every_field_of_a_record():
    data = TaskRunner().run(4, _task(_boom, "bad"))
    result = decode_result(Task(4, "t", b"", None, True), data, {})
    assert (result.status, result.error, result.error_type) == ("error", "bad", "ValueError")
    assert isinstance(result.exception, ValueError) and "_boom" in result.traceback
    assert result.time_start is not None and result.seconds >= 0
