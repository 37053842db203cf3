"""PyTorch eager side of the engine benchmark (tools/bench). Reads JSON commands on
stdin, one per line, and answers one JSON line each, so that the TypeScript benchmark
can interleave PyTorch and engine measurements in one run:

  {"op": "step", "batch": 8, "iters": 5, "guidance": 2.0}  -> {"ms": [..per iter..]}
  {"op": "quit"}

One "step" = one Euler sampler step for `batch` images (CFG doubles the rows), the
same work as one engine.step() call. The model is rebuilt from the committed ONNX
parts (switchyard_zoo.from_onnx), so both sides run the same weights; before it answers,
it checks the rebuilt model against the golden tensors (check_rebuild.py) and exits with
{"error": ...} past 1e-4.
"""
import json
import sys
import time

import torch

from check_rebuild import check
from switchyard_zoo.from_onnx import load_model
from switchyard_zoo.sampling import velocity

# The rebuilt model must compute what the ONNX parts compute, or the timings compare different work.
TOLERANCE = 1e-4


def main():
    model_dir, threads = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2
    torch.set_num_threads(threads)
    diffs, worst = check(model_dir)
    if diffs[worst] > TOLERANCE:
        print(json.dumps({"error": f"the PyTorch model rebuilt from the ONNX parts differs from the golden tensors: {worst} by {diffs[worst]:.3g} (> {TOLERANCE})"}), flush=True)
        sys.exit(1)
    model = load_model(model_dir)
    print(json.dumps({"ready": True, "torch": torch.__version__, "threads": threads, "rebuild_max_abs_diff": diffs[worst], "checked": len(diffs)}), flush=True)
    gen = torch.Generator().manual_seed(0)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        b, g = cmd["batch"], float(cmd.get("guidance", 2.0))
        x = torch.randn(b, 1, 28, 28, generator=gen)
        y = torch.randint(0, 10, (b,), generator=gen)
        ms = []
        with torch.no_grad():
            for _ in range(cmd.get("iters", 5)):
                t0 = time.perf_counter()
                v = velocity(model, x, 0.5, y, g)
                x = x + (-0.05) * v
                ms.append((time.perf_counter() - t0) * 1000)
        print(json.dumps({"ms": ms}), flush=True)


if __name__ == "__main__":
    main()
