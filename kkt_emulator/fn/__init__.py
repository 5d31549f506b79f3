"""The fiscal drive (ФН): frames, commands, TLV documents and the drive state machine.

Nothing here does I/O or knows about tills: the state machine takes the current time as an argument
and returns answers (sans-IO); :mod:`kkt_emulator.fnio.client` is the only async part, and it talks
to a byte pipe.
"""
