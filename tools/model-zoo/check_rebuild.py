"""Checks the PyTorch model rebuilt from the committed ONNX parts (switchyard_zoo.from_onnx)
against the golden tensors the export wrote from the ONNX parts' own runs
(golden/parts.safetensors): every part's outputs on its golden inputs and the whole
model's velocity. The engine benchmark's PyTorch side runs this model, so its timings
are only comparable if this passes.

  python3 tools/model-zoo/check_rebuild.py MODEL_DIR [--tolerance 1e-4]

Prints one JSON line {"ok", "max_abs_diff", "worst", "checked"}; exits 1 past the tolerance.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from switchyard_zoo import safetensors  # noqa: E402
from switchyard_zoo.from_onnx import load_model  # noqa: E402


def check(model_dir: str):
    model = load_model(model_dir)
    g = {k: torch.from_numpy(v.copy()) for k, v in safetensors.load(os.path.join(model_dir, "golden/parts.safetensors")).items()}
    diffs = {}

    def cmp(name, got, want):
        diffs[name] = float((got - want).abs().max())

    with torch.no_grad():
        h, c = model.embed(g["embed.in.x"], g["embed.in.t"], g["embed.in.y"].long())
        cmp("embed.h", h, g["embed.out.h"])
        cmp("embed.c", c, g["embed.out.c"])
        for l, block in enumerate(model.blocks):
            p = f"block{l}"
            out = block.dense(g[f"{p}.dense.in.h"], g[f"{p}.dense.in.c"])
            for name, got in zip(["h1", "u", "logits", "gate"], out):
                cmp(f"{p}.dense.{name}", got, g[f"{p}.dense.out.{name}"])
            for e, expert in enumerate(block.experts):
                cmp(f"{p}.expert{e}", expert(g[f"{p}.expert{e}.in.u"]), g[f"{p}.expert{e}.out.y"])
            cmp(f"{p}.shared", block.shared(g[f"{p}.shared.in.u"]), g[f"{p}.shared.out.y"])
        cmp("final.v", model.final(g["final.in.h"], g["final.in.c"]), g["final.out.v"])
        cmp("model.v", model(g["embed.in.x"], g["embed.in.t"], g["embed.in.y"].long())[0], g["model.out.v"])
    worst = max(diffs, key=diffs.get)
    return diffs, worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    a = ap.parse_args()
    diffs, worst = check(a.model_dir)
    ok = diffs[worst] <= a.tolerance
    print(json.dumps({"ok": ok, "max_abs_diff": diffs[worst], "worst": worst, "model_v": diffs["model.v"], "checked": len(diffs)}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
