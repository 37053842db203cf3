"""asyncio client for Switchyard's native gRPC API, the same surface as `Client`."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, List, Optional

import grpc
import grpc.aio

from . import _request as r
from ._gen import switchyard_pb2 as pb
from .errors import SwitchyardError
from .events import Event, Result, from_message


class AsyncClient(r._ClientBase):
    """asyncio counterpart of `Client`: `async for ev in client.generate(...)`."""

    _grpc = grpc.aio

    async def generate(self, *, timeout: Optional[float] = None, **params) -> AsyncIterator[Event]:
        req = r.generate_request(**params)
        attempt = 0
        while True:
            attempt += 1
            call = self._stub.Generate(req, timeout=timeout, metadata=self._metadata)
            got_event = False
            try:
                async for msg in call:
                    got_event = True
                    yield from_message(msg)
                return
            except grpc.aio.AioRpcError as e:
                if r.retryable(e.code(), got_event) and attempt < self._max_attempts:
                    await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
                    continue
                raise SwitchyardError.from_rpc_error(e) from None
            finally:
                call.cancel()

    async def generate_images(self, *, timeout: Optional[float] = None, **params) -> Result:
        async for ev in self.generate(timeout=timeout, **params):
            if isinstance(ev, Result):
                return ev
        raise SwitchyardError(grpc.StatusCode.INTERNAL, "the stream ended without a result")

    async def cancel(self, request_id: str, *, timeout: Optional[float] = 10.0) -> bool:
        try:
            return (await self._stub.Cancel(pb.CancelRequest(request_id=request_id), timeout=timeout, metadata=self._metadata)).cancelled
        except grpc.aio.AioRpcError as e:
            raise SwitchyardError.from_rpc_error(e) from None

    async def list_models(self, *, timeout: Optional[float] = 10.0) -> List["pb.ModelInfo"]:
        try:
            return list((await self._stub.ListModels(pb.ListModelsRequest(), timeout=timeout, metadata=self._metadata)).models)
        except grpc.aio.AioRpcError as e:
            raise SwitchyardError.from_rpc_error(e) from None

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
