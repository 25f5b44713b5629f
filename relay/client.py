"""The client for this relay's HTTP API, as `relay.client` for those who installed the
server. It is the `relay_client` package, which also installs on its own, without the
server's dependencies, as the `journey-relay-client` distribution (clients/python/)."""

# One list of public names, kept by relay_client itself.
from relay_client import *  # noqa: F403
from relay_client import __all__ as __all__
