"""The register firmware: polls the cloud, fiscalises shop documents on its drive, reports back.

The till speaks to the drive only through :class:`~kkt_emulator.fnio.client.FnClient`, to the
cloud only through :class:`~kkt_emulator.till.cloud_link.CloudLink`, and to the OFD stand-in of its
process only through the :class:`~kkt_emulator.till.ports.OfdFaults` port; it imports neither
``cloud`` nor ``ofd`` nor ``control``.

Layout (one job per module; :class:`~kkt_emulator.till.till.Till` wires them):

* ``till`` — the till: lifecycle, binding, and the public API (dicts, for tests and tools);
* ``context`` — settings, config and the shared mutable state every part works on;
* ``control_api`` / ``results`` — the control plane's typed face of a till;
* ``fault_control`` / ``faults`` — the fault catalogue, the faults in force, crash points;
* ``drive_slot`` — the drive, its server and the link to it;
* ``drive_keeper`` — registration, drive replacement, snapshots;
* ``fiscal`` — fiscalisation and reconciliation (crash safety);
* ``shifts`` — shifts, counter sales, correction receipts;
* ``loops`` — the poll, outbox and OFD loops;
* ``views`` — the drive's state, the whole state, heartbeats;
* ``receipts`` / ``failures`` / ``registration`` — firmware checks, TLVs, error texts;
* ``store`` — the journal, outbox and identity in SQLite; ``ofd_sender`` — drive → OFD.
"""
