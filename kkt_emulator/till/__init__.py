"""The register firmware: polls the cloud, fiscalises shop documents on its drive, reports back.

The till speaks to the drive only through :class:`~kkt_emulator.fnio.client.FnClient` and to the
cloud only through :class:`~kkt_emulator.till.cloud_link.CloudLink`.
"""
