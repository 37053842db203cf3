"""Request building, credentials and the retry rule shared by the sync and asyncio clients."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import grpc

from ._gen import switchyard_pb2 as pb
from ._gen import switchyard_pb2_grpc as pb_grpc

SAMPLERS = {None: pb.SAMPLER_UNSPECIFIED, "euler": pb.SAMPLER_EULER, "heun": pb.SAMPLER_HEUN, "pc": pb.SAMPLER_PC}

#: Attempts for a call that fails with UNAVAILABLE before any event arrived.
DEFAULT_MAX_ATTEMPTS = 3
#: First back-off between attempts, seconds; doubles each time.
DEFAULT_BACKOFF_S = 0.1
#: Results of many images exceed gRPC's 4 MiB default; the gateway sends up to 64 MiB.
DEFAULT_MAX_RECEIVE_BYTES = 64 * 1024 * 1024


def generate_request(
    *,
    label: Optional[int] = None,
    count: Optional[int] = None,
    steps: Optional[int] = None,
    sampler: Optional[str] = None,
    guidance: Optional[float] = None,
    guidance_t_min: Optional[float] = None,
    guidance_t_max: Optional[float] = None,
    reuse_threshold: Optional[float] = None,
    shift: Optional[float] = None,
    seed: Optional[int] = None,
    priority: int = 0,
    preview_interval: int = 0,
    request_id: str = "",
    model: str = "",
) -> "pb.GenerateRequest":
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler {sampler!r} must be one of {', '.join(repr(s) for s in SAMPLERS if s)}")
    req = pb.GenerateRequest(model=model, sampler=SAMPLERS[sampler], priority=priority, preview_interval=preview_interval, request_id=request_id)
    for name, value in (("label", label), ("count", count), ("steps", steps), ("guidance", guidance), ("guidance_t_min", guidance_t_min), ("guidance_t_max", guidance_t_max), ("reuse_threshold", reuse_threshold), ("shift", shift), ("seed", seed)):
        if value is not None:
            setattr(req, name, value)
    return req


def metadata(token: Optional[str]) -> Sequence[Tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def channel_options(max_receive_bytes: int) -> Sequence[Tuple[str, int]]:
    return (("grpc.max_receive_message_length", max_receive_bytes),)


def credentials(tls: bool, root_certificates: Optional[bytes]) -> Optional[grpc.ChannelCredentials]:
    if not tls and root_certificates is None:
        return None
    return grpc.ssl_channel_credentials(root_certificates=root_certificates)


def retryable(code: grpc.StatusCode, got_event: bool) -> bool:
    """UNAVAILABLE is transient (no gateway, no scheduler); retry only while nothing was accepted."""
    return code == grpc.StatusCode.UNAVAILABLE and not got_event


class _ClientBase:
    """Connection options shared by `Client` and `AsyncClient`; subclasses open the channel."""

    _grpc = grpc  # the module whose secure_channel/insecure_channel open the channel

    def __init__(
        self,
        address: str,
        *,
        token: Optional[str] = None,
        tls: bool = False,
        root_certificates: Optional[bytes] = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff_s: float = DEFAULT_BACKOFF_S,
        max_receive_bytes: int = DEFAULT_MAX_RECEIVE_BYTES,
    ):
        creds = credentials(tls, root_certificates)
        opts = channel_options(max_receive_bytes)
        self._channel = self._grpc.secure_channel(address, creds, opts) if creds else self._grpc.insecure_channel(address, opts)
        self._stub = pb_grpc.SwitchyardStub(self._channel)
        self._metadata = metadata(token)
        self._max_attempts = max(1, max_attempts)
        self._backoff_s = backoff_s
