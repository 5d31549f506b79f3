"""The fiscal drive's I/O: the till's async client, the server pump, ``fn serve`` and the archive.

The drive itself (:mod:`kkt_emulator.fn`) is a pure state machine; everything here moves its bytes
over a pipe or keeps its documents in SQLite.
"""
