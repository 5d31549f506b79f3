"""The fiscal drive (ФН)'s pure core: frames, commands, TLV documents and the drive state machine.

Nothing here does I/O or knows about tills (``tests/fn/test_core_is_pure.py`` checks it): the
state machine takes the current time as an argument and returns answers (sans-IO); the I/O around
it — the async client, the pump that serves a pipe, ``fn serve`` and the SQLite archive — lives in
:mod:`kkt_emulator.fnio`.

Wire: :mod:`~kkt_emulator.fn.frame` (frames, framer), :mod:`~kkt_emulator.fn.crc`,
:mod:`~kkt_emulator.fn.commands` (request/answer layouts), :mod:`~kkt_emulator.fn.codes`.
Documents: :mod:`~kkt_emulator.fn.tags` (catalogue, :class:`~kkt_emulator.fn.tags.Tag`),
:mod:`~kkt_emulator.fn.tlv`, :mod:`~kkt_emulator.fn.container`, :mod:`~kkt_emulator.fn.signing`.
The drive: :mod:`~kkt_emulator.fn.config` (what a drive is), :mod:`~kkt_emulator.fn.state` (what it
remembers, and the storage port), :mod:`~kkt_emulator.fn.rules` (the phase × command table),
:mod:`~kkt_emulator.fn.core` and the command families :mod:`~kkt_emulator.fn.registration`,
:mod:`~kkt_emulator.fn.documents`, :mod:`~kkt_emulator.fn.ofd`, :mod:`~kkt_emulator.fn.reads`, put
together in :mod:`~kkt_emulator.fn.drive`; :mod:`~kkt_emulator.fn.endpoint` answers frames and
records crashes (:mod:`~kkt_emulator.fn.crash`).
"""
