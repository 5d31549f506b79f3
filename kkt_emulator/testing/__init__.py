"""Test helpers shipped with the package, for the project's tests and for users' own suites.

* :mod:`~kkt_emulator.testing.drive` — :class:`DriveBench`, a drive driven frame by frame.
* :mod:`~kkt_emulator.testing.stack` — :class:`StackHarness`, a whole installation, and
  :func:`sale_document`.
* :mod:`~kkt_emulator.testing.plugin` — the pytest plugin (``kkt_stack`` and friends), loaded
  through the ``pytest11`` entry point.
* :mod:`~kkt_emulator.testing.shared` — the installations the plugin's tests share, on a loop of
  their own, and how they are reset between tests.

Only tests import this package: no production module may (``tests/test_layering.py``), so
pytest never becomes a run-time dependency.
"""
