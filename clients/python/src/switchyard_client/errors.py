"""One error type for the client, with the server's gRPC status code and offending field."""

from __future__ import annotations

from typing import Optional

import grpc


class SwitchyardError(Exception):
    """A failed call: `code` is the gRPC status, `field` the offending request field (bad input)."""

    def __init__(self, code: grpc.StatusCode, message: str, field: Optional[str] = None):
        super().__init__(f"[{code.name.lower()}] {message}")
        self.code = code
        self.message = message
        self.field = field

    @classmethod
    def from_rpc_error(cls, e: grpc.RpcError) -> "SwitchyardError":
        code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
        details = (e.details() if hasattr(e, "details") else None) or str(e)
        # the server leads its message with "[code] "; keep the message itself
        if details.startswith("[") and "] " in details:
            details = details.split("] ", 1)[1]
        field = None
        try:
            for k, v in e.trailing_metadata() or ():
                if k == "sy-field":
                    field = v
        except Exception:  # noqa: BLE001 - aio errors may carry no trailers
            pass
        return cls(code, details, field)
