"""Synchronous client for Switchyard's native gRPC API (switchyard.v1.Switchyard)."""

from __future__ import annotations

import time
from typing import Iterator, List, Optional

import grpc

from . import _request as r
from ._gen import switchyard_pb2 as pb
from .errors import SwitchyardError
from .events import Event, Result, from_message


class Client(r._ClientBase):
    """A connection to a Switchyard gateway.

    >>> with Client("127.0.0.1:50051") as c:
    ...     result = c.generate_images(label=3, count=4, steps=20)

    `token` is sent as `authorization: Bearer <token>`; `tls=True` uses the system roots,
    `root_certificates` a PEM bundle of your own. A call that fails with UNAVAILABLE
    before any event arrived is retried `max_attempts` times with doubling back-off.
    """

    def generate(self, *, timeout: Optional[float] = None, **params) -> Iterator[Event]:
        """Streams Accepted, Progress per completed step, then one Result.

        Parameters are those of `GenerateRequest`: label, count, steps, sampler
        ("euler" | "heun" | "pc"), guidance, guidance_t_min, guidance_t_max (guidance only for t in
        that interval), reuse_threshold (residual reuse, in (0, 1]), shift, seed, priority, preview_interval,
        request_id, model. `timeout` (seconds) becomes the gRPC deadline, which the
        scheduler enforces too. Leaving the loop early cancels the request.
        """
        req = r.generate_request(**params)
        attempt = 0
        while True:
            attempt += 1
            call = self._stub.Generate(req, timeout=timeout, metadata=self._metadata)
            got_event = False
            try:
                for msg in call:
                    got_event = True
                    yield from_message(msg)
                return
            except grpc.RpcError as e:
                if r.retryable(e.code(), got_event) and attempt < self._max_attempts:
                    time.sleep(self._backoff_s * 2 ** (attempt - 1))
                    continue
                raise SwitchyardError.from_rpc_error(e) from None
            finally:
                call.cancel()  # no-op once the stream has ended

    def generate_images(self, *, timeout: Optional[float] = None, **params) -> Result:
        """Runs a generation to its end and returns the Result."""
        for ev in self.generate(timeout=timeout, **params):
            if isinstance(ev, Result):
                return ev
        raise SwitchyardError(grpc.StatusCode.INTERNAL, "the stream ended without a result")

    def cancel(self, request_id: str, *, timeout: Optional[float] = 10.0) -> bool:
        """Cancels a request by id (the one Accepted carried, or your own request_id)."""
        try:
            return self._stub.Cancel(pb.CancelRequest(request_id=request_id), timeout=timeout, metadata=self._metadata).cancelled
        except grpc.RpcError as e:
            raise SwitchyardError.from_rpc_error(e) from None

    def list_models(self, *, timeout: Optional[float] = 10.0) -> List["pb.ModelInfo"]:
        try:
            return list(self._stub.ListModels(pb.ListModelsRequest(), timeout=timeout, metadata=self._metadata).models)
        except grpc.RpcError as e:
            raise SwitchyardError.from_rpc_error(e) from None

    def get_model(self, name: str = "", *, timeout: Optional[float] = 10.0) -> "pb.ModelInfo":
        try:
            return self._stub.GetModel(pb.GetModelRequest(name=name), timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise SwitchyardError.from_rpc_error(e) from None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
