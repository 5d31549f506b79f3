"""The vendor cloud stand-in: the store API, the till API and the cabinet (ЛК) over one SQLite file.

Layers, bottom up: ``lifecycle`` (the pure transition table), ``storage`` (SQLite), ``service``
(operations and timers), the FastAPI routers, and ``app.Cloud`` that ties them together. This
package never imports ``kkt_emulator.till`` or ``kkt_emulator.fn``.
"""
