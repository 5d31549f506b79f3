"""The ``kkt-emulator`` command line: one module per command group, registered in :mod:`.main`.

:mod:`.main` is the entry point (exit codes, the one ``error: …`` line) and :mod:`.groups` adds
every group below. Shared pieces: :mod:`.output` (JSON or tables), :mod:`.ready` (the ready-file of
a running ``up``), :mod:`.options` (the options of every control command, one
:class:`~.options.ControlOptions`) and :mod:`.fanout` (asking tills over MQTT and printing their
answers, ``till-protocol.md`` §3).

Local commands: ``up`` (:mod:`.stack_cmd`), ``wait``, ``fn`` (a drive: frames, serve, archive),
``tlv``, ``profiles``, ``bench``, ``ofd``, ``doc``, ``till``, ``cloud``, ``cabinet`` and
``scenario``, each in its ``<name>_cmd`` module. Control commands, each group in its module:
``status`` (:mod:`.status_cmd`), ``set`` (:mod:`.settings_cmd`), ``fault`` (:mod:`.fault_cmd`),
``clock`` (:mod:`.clock_cmd`), ``shift`` (:mod:`.shift_cmd`), ``sell`` and ``correction``
(:mod:`.sale_cmd`), ``snapshot`` and ``restore`` (:mod:`.snapshot_cmd`) and ``fn replace``
(:mod:`.fn_replace_cmd`).
"""
