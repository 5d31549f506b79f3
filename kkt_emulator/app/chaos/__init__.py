"""The chaos harness (issue 11): cloud, OFD and tills as processes, SIGKILLed under load.

Layout:

- :mod:`.procs`: start a CLI process on its state, SIGKILL it, restart it on the same ports.
- :mod:`.proxy`: the HTTP-aware TCP proxy that kills between a commit and its answer.
- :mod:`.load`: the steady store-API load, each document retried with its id.
- :mod:`.model`: the options of a run and its JSON result.
- :mod:`.checks`: the checks from outside (lost, doubled, stuck, acknowledgements, ФД gaps).
- :mod:`.harness`: one run, wired together (:func:`run_chaos`).
"""

from kkt_emulator.app.chaos.harness import run_chaos
from kkt_emulator.app.chaos.model import KILL_KINDS, ChaosOptions, ChaosResult
from kkt_emulator.app.chaos.procs import ChaosStartError, Kind

__all__ = ["KILL_KINDS", "ChaosOptions", "ChaosResult", "ChaosStartError", "Kind", "run_chaos"]
