"""The vendor cloud stand-in: the store API, the till API and the cabinet (ЛК) over one SQLite file.

Layers, bottom up:

- ``lifecycle``: the pure transition table of a document (store-api.md §8);
- ``validation``, ``schemas``, ``settings``, ``security``, ``texts``: parsing, request models,
  instance settings, credentials, the vendor's texts;
- storage: ``db`` (connection, transactions), ``records`` (rows as dataclasses),
  ``tables_directory`` and ``tables_documents`` (the queries), combined in ``storage.Storage``;
- operations: ``core`` (shared plumbing), ``store_ops``, ``till_ops``, ``cabinet_ops``,
  ``timers``, ``callbacks``, ``demo``, combined in ``service.CloudService``; ``views`` renders the
  JSON;
- HTTP: the routers ``store_api``, ``device_api``, ``cabinet_api``, and ``app.Cloud`` that ties
  storage, service, the timer task and the FastAPI app together.

``cabinet_client`` and ``bench`` are clients of a running cloud. This package never imports
``kkt_emulator.till`` or ``kkt_emulator.fn``.
"""
