"""kkt_emulator: a virtual МодульКасса online till for integration tests."""

__version__ = "0.1.0"
