"""Rebuilds the PyTorch MoEDiT from an exported model directory (manifest + ONNX parts),
so that the PyTorch side of the benchmarks runs exactly the committed weights without
shipping a second copy of them.

The legacy exporter stores nn.Linear weights of 3-D inputs as transposed MatMul
initializers (`onnx::MatMul_N`); within a part their shapes are distinct, so each is
matched to its parameter by shape. The graph rewrites (fused attention, 2-D Gemm) add
shape constants named after their nodes (`/proj/MatMul_2d_in_shape`): skipped. Any other
initializer that matches no parameter is an error, so a part the rebuild does not
understand cannot pass unnoticed.
"""
import json
import os

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from .model import MoEDiT


def _inits(path):
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}


def load_model(model_dir: str) -> MoEDiT:
    with open(os.path.join(model_dir, "manifest.json")) as f:
        m = json.load(f)
    a, moe = m["architecture"], m["moe"]
    model = MoEDiT(dim=a["hiddenSize"], depth=a["numLayers"], heads=a["numHeads"], patch=a["patch"],
                   experts=moe["numExperts"], expert_hidden=moe["expertHidden"],
                   shared_hidden=moe["sharedHidden"], top_k=moe["topK"])
    sd = model.state_dict()
    new = {}
    for part in m["parts"]:
        init = _inits(os.path.join(model_dir, part["file"]))
        kind, name = part["kind"], part["name"]
        prefix = {"embed": "embed.", "final": "final.", "dense": f"blocks.{part.get('layer')}.dense.",
                  "shared": f"blocks.{part.get('layer')}.shared.",
                  "expert": f"blocks.{part.get('layer')}.experts.{part.get('expert')}."}[kind]
        matmuls = {v.shape: v for k, v in init.items() if k.startswith("onnx::MatMul")}
        for k, v in init.items():
            if k.startswith("onnx::"):
                continue
            if prefix + k in sd:
                new[prefix + k] = v
            elif not k.startswith("/"):
                # "/proj/MatMul_2d_in_shape" and the like are shape constants of the graph
                # rewrites (fused attention, 2-D Gemm), not parameters; anything else is.
                raise KeyError(f"{name}: initializer {k} {tuple(v.shape)} matches no parameter of the PyTorch model")
        for key, ref in sd.items():
            if key.startswith(prefix) and key not in new and key.endswith("weight"):
                t = matmuls.get(tuple(reversed(ref.shape)))
                if t is None:
                    raise KeyError(f"{name}: no initializer for {key} {tuple(ref.shape)}")
                new[key] = t.T
    missing = set(sd) - set(new)
    if missing:
        raise KeyError(f"parameters not found in the ONNX parts: {sorted(missing)[:5]}")
    model.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float32, copy=True)) for k, v in new.items()})
    return model.eval()
