"""The verdict lines of the demo's act 4 and of the smoke test: a submission not stored
says what the AWS side holds of it, so a slow delivery on a loaded machine can be told
from a loss."""

from __future__ import annotations

from smoke import check

SID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


def report_with(shown: dict | None) -> check.Report:
    name = f"submissions/2026/01/01/{SID}.json"
    sent = check.Sent(body={"type": "t", "data": {}}, key="k", status=202, id=SID,
                      object_name=name, sha256="0" * 64)  # fmt: skip
    report = check.Report(sent=[sent])
    if shown is not None:
        report.statuses[SID] = shown
    return report


def status(**fields) -> dict:
    return {"id": SID, "type": "t", "status": "accepted", "attempts": 0, "redeliveries": 0,
            "last_error": None} | fields  # fmt: skip


def test_a_submission_without_an_object_carries_the_aws_status_attempts_and_last_error():
    report = report_with(status(status="accepted", attempts=7, last_error="ingest: HTTP 503"))
    check.compare(report)
    assert report.mismatches == [
        f"{SID}: not stored, no object submissions/2026/01/01/{SID}.json "
        "(AWS: accepted, attempts 7, last error: ingest: HTTP 503)"
    ]


def test_a_forwarded_one_says_its_redeliveries_and_that_there_was_no_error():
    report = report_with(status(status="forwarded", attempts=2, redeliveries=1))
    check.compare(report)
    (line,) = report.mismatches
    assert line.endswith("(AWS: forwarded, attempts 2, redeliveries 1, last error: none)")


def test_one_the_api_does_not_know_says_so():
    report = report_with({"status": "HTTP 404"})
    check.compare(report)
    (line,) = report.mismatches
    assert line.endswith("(AWS: HTTP 404)")
    report = report_with(None)  # never read: the API did not answer in time
    check.compare(report)
    assert report.mismatches[0].endswith("(AWS: no status read)")


def test_an_object_the_aws_side_has_not_confirmed_carries_the_same_clause():
    report = report_with(status(status="forwarded", attempts=1, last_error="no receipt yet"))
    sent = report.sent[0]
    report.stored[sent.object_name] = {
        "submission_id": SID, "type": "t", "data": {}, "checksum_verified": True,
        "sha256": check.sha256_hex(check.SubmissionIn(type="t", data={}).canonical_json()),
    }  # fmt: skip
    check.compare(report)
    assert report.mismatches == [
        f"{SID}: not confirmed stored (AWS: forwarded, attempts 1, last error: no receipt yet)"
    ]
