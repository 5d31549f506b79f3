"""The checks from outside, after the load stopped and everything was restarted and drained.

Inputs are what a user can see: the store API's status of every document it answered 200, the
cabinet's document list (fiscal number, OFD delivery) and each drive's archive as
``kkt-emulator fn archive PATH --json`` prints it. :func:`check` compares them and returns the
findings; nothing here talks to a process.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DriveReceipt", "Findings", "StoredDocument", "check"]

FINAL = frozenset({"COMPLETED", "FAILED"})
STUCK = frozenset({"QUEUED", "PENDING", "REQUEUED"})
ACKNOWLEDGED = "acknowledged"
RECEIPT = "RECEIPT"


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """One document as the store API and the cabinet show it."""

    doc_id: str
    status: str
    failure: str | None
    fn_number: str | None
    fd: int | None
    ofd_state: str | None

    @classmethod
    def from_api(cls, store_status: dict[str, Any], summary: dict[str, Any]) -> StoredDocument:
        """From the store API's status (status, fiscal number) and the cabinet's summary (OFD)."""
        failure = store_status.get("failureInfo") or {}
        fiscal = store_status.get("fiscalInfo") or {}
        ofd = summary.get("ofd") or {}
        fd = fiscal.get("fnDocNumber")
        return cls(
            doc_id=str(summary["id"]),
            status=str(store_status["status"]),
            failure=str(failure["message"]) if failure.get("message") else None,
            fn_number=str(fiscal["fnNumber"]) if fiscal.get("fnNumber") else None,
            fd=int(fd) if fd is not None else None,
            ofd_state=str(ofd["state"]) if ofd.get("state") else None,
        )


@dataclass(frozen=True, slots=True)
class DriveReceipt:
    """One fiscal document in a drive's archive."""

    fn_number: str
    fd: int
    document: str
    acknowledged: bool


@dataclass(slots=True)
class Findings:
    """What the checks found; every list is empty and every count zero in a good run."""

    completed: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    stuck: dict[str, list[str]] = field(default_factory=dict)
    not_final: dict[str, list[str]] = field(default_factory=dict)
    completed_without_receipt: list[str] = field(default_factory=list)
    receipts_without_document: list[str] = field(default_factory=list)
    acks_missing: list[str] = field(default_factory=list)
    fd_gaps: dict[str, list[int]] = field(default_factory=dict)
    receipts: int = 0
    acknowledged_in_drives: int = 0

    @property
    def stuck_count(self) -> int:
        """Documents left QUEUED/PENDING/REQUEUED."""
        return sum(len(ids) for ids in self.stuck.values())

    @property
    def ok(self) -> bool:
        """Every check passed."""
        return not (
            self.failed
            or self.lost
            or self.doubled
            or self.stuck
            or self.not_final
            or self.completed_without_receipt
            or self.receipts_without_document
            or self.acks_missing
            or self.fd_gaps
        )


def _gaps(fds: list[int]) -> list[int]:
    present = set(fds)
    return [n for n in range(1, max(present, default=0) + 1) if n not in present]


def check(
    answered_200: set[str],
    documents: dict[str, StoredDocument],
    drives: dict[str, list[DriveReceipt]],
) -> Findings:
    """Compare the store API's answers, the cloud's documents and the drives' archives.

    Args:
        answered_200: ids the store API answered 200 to.
        documents: the cloud's view of every document it holds, by id.
        drives: every drive's archive, by drive serial (ФН number).
    """
    found = Findings()
    failed: Counter[str] = Counter()
    by_fiscal: defaultdict[tuple[str, int], list[str]] = defaultdict(list)
    stuck: defaultdict[str, list[str]] = defaultdict(list)
    not_final: defaultdict[str, list[str]] = defaultdict(list)
    for doc_id in sorted(answered_200):
        doc = documents.get(doc_id)
        if doc is None:
            found.lost.append(doc_id)
        elif doc.status == "COMPLETED":
            found.completed += 1
            if doc.fn_number is None or doc.fd is None:
                found.completed_without_receipt.append(doc_id)
            else:
                by_fiscal[doc.fn_number, doc.fd].append(doc_id)
        elif doc.status == "FAILED":
            failed[doc.failure or "?"] += 1
        elif doc.status in STUCK:
            stuck[doc.status].append(doc_id)
        else:
            not_final[doc.status].append(doc_id)
    found.failed = dict(failed)
    found.stuck = dict(stuck)
    found.not_final = dict(not_final)
    receipts: dict[tuple[str, int], DriveReceipt] = {}
    for serial, archive in sorted(drives.items()):
        gaps = _gaps([r.fd for r in archive])
        if gaps:
            found.fd_gaps[serial] = gaps
        for entry in archive:
            if entry.document == RECEIPT:
                receipts[serial, entry.fd] = entry
    found.receipts = len(receipts)
    for (serial, fd), ids in sorted(by_fiscal.items()):
        if len(ids) > 1:
            found.doubled.extend(ids)
        receipt = receipts.get((serial, fd))
        if receipt is None:
            found.completed_without_receipt.extend(ids)
            continue
        if receipt.acknowledged:
            found.acknowledged_in_drives += 1
            if any(documents[i].ofd_state != ACKNOWLEDGED for i in ids):
                found.acks_missing.extend(ids)
    # A receipt no COMPLETED document points to: fiscalised twice, or fiscalised and never
    # reported (its document then shows as stuck too).
    found.receipts_without_document = [
        f"{serial}:{fd}" for serial, fd in sorted(receipts) if (serial, fd) not in by_fiscal
    ]
    return found
