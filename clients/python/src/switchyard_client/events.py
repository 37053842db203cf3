"""Typed events of a generation: Accepted, then Progress per step, then one Result."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import List, Union

import numpy as np

from ._gen import switchyard_pb2 as pb


def image_array(img: "pb.Image") -> np.ndarray:
    """An Image message as a float32 array [channels, height, width] (values in [-1, 1])."""
    return np.frombuffer(img.data, dtype="<f4").reshape(img.channels, img.height, img.width).copy()


@dataclass(frozen=True)
class Accepted:
    request_id: str
    queue_position: int


@dataclass(frozen=True)
class Progress:
    """`step` of `steps` sampler steps done at flow time `t`; previews are x̂0 estimates."""

    step: int
    steps: int
    t: float
    previews: List[np.ndarray] = field(default_factory=list)


@dataclass(frozen=True)
class Timings:
    queue_ms: float
    compute_ms: float
    total_ms: float
    model_evals: int
    #: Of the evaluations per image, those with classifier-free guidance (fewer with a guidance interval).
    guided_evals: int = 0
    #: With reuse_threshold, over all the request's images: evaluations that reused the cached residual, and that ran every block.
    reused_evals: int = 0
    full_evals: int = 0


@dataclass(frozen=True)
class Result:
    request_id: str
    images: List[np.ndarray]
    """float32 [channels, height, width] per image, values in [-1, 1]."""
    pngs: List[bytes]
    """The same images as 8-bit PNG files."""
    seed: int
    timings: Timings

    def pil_images(self):
        """The images as PIL images (needs `pip install switchyard-client[pil]`)."""
        from PIL import Image  # optional dependency

        return [Image.open(io.BytesIO(p)) for p in self.pngs]


Event = Union[Accepted, Progress, Result]


def from_message(ev: "pb.GenerateEvent") -> Event:
    kind = ev.WhichOneof("event")
    if kind == "accepted":
        return Accepted(ev.accepted.request_id, ev.accepted.queue_position)
    if kind == "progress":
        p = ev.progress
        return Progress(p.step, p.steps, p.t, [image_array(i) for i in p.preview])
    if kind == "result":
        r = ev.result
        t = r.timings
        return Result(
            request_id=r.request_id,
            images=[image_array(i) for i in r.images],
            pngs=[bytes(i.png) for i in r.images],
            seed=r.seed,
            timings=Timings(t.queue_ms, t.compute_ms, t.total_ms, t.model_evals, t.guided_evals, t.reused_evals, t.full_evals),
        )
    raise ValueError(f"unknown event {kind!r}")
