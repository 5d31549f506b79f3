"""The MQTT control plane (``till-protocol.md`` §3): topics, the broker link, till agents, mosquitto.

Modules: :mod:`~kkt_emulator.control.topics` (names and payloads), :mod:`~kkt_emulator.control.link`
(the only aiomqtt user), :mod:`~kkt_emulator.control.agent` (one till on MQTT),
:mod:`~kkt_emulator.control.broker` (a private mosquitto), :mod:`~kkt_emulator.control.plane`
(broker + agents for ``up``) and :mod:`~kkt_emulator.control.client` (the command line's side).
"""
