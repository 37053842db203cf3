"""Python client for Switchyard (switchyard.v1 native gRPC API).

    from switchyard_client import Client
    with Client("127.0.0.1:50051") as c:
        for ev in c.generate(label=3, count=4, steps=20, preview_interval=5):
            print(ev)
"""

from .aio import AsyncClient
from .client import Client
from .errors import SwitchyardError
from .events import Accepted, Event, Progress, Result, Timings

__all__ = ["Client", "AsyncClient", "SwitchyardError", "Accepted", "Progress", "Result", "Timings", "Event"]
__version__ = "0.1.0"
