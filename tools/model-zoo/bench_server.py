"""PyTorch eager side of the engine benchmark (tools/bench). Reads JSON commands on
stdin, one per line, and answers one JSON line each, so that the TypeScript benchmark
can interleave PyTorch and engine measurements in one run:

  {"op": "step", "batch": 8, "iters": 5, "guidance": 2.0}  -> {"ms": [..per iter..]}
  {"op": "quit"}

Arguments: model_dir [threads [device]]; device "cpu" (default) or "cuda" (timed with
torch.cuda.synchronize(), against the engine on ONNX Runtime's CUDA provider).

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
    device = sys.argv[3] if len(sys.argv) > 3 else "cpu"
    if device not in ("cpu", "cuda"):
        print(json.dumps({"error": f'device "{device}" must be "cpu" or "cuda"'}), flush=True)
        sys.exit(1)
    if device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"error": "device cuda: torch.cuda.is_available() is False (a CUDA build of torch and a GPU are needed)"}), flush=True)
        sys.exit(1)
    torch.set_num_threads(threads)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    diffs, worst = check(model_dir)
    if diffs[worst] > TOLERANCE:
        print(json.dumps({"error": f"the PyTorch model rebuilt from the ONNX parts differs from the golden tensors: {worst} by {diffs[worst]:.3g} (> {TOLERANCE})"}), flush=True)
        sys.exit(1)
    model = load_model(model_dir).to(device)
    # tensors the sampling code creates go to the model's device too
    torch.set_default_device(device)
    print(json.dumps({"ready": True, "torch": torch.__version__, "device": device, "threads": threads, "rebuild_max_abs_diff": diffs[worst], "checked": len(diffs)}), flush=True)
    gen = torch.Generator().manual_seed(0)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        b, g = cmd["batch"], float(cmd.get("guidance", 2.0))
        x = torch.randn(b, 1, 28, 28, generator=gen, device="cpu").to(device)
        y = torch.randint(0, 10, (b,), generator=gen, device="cpu").to(device)
        ms = []
        with torch.no_grad():
            for _ in range(cmd.get("iters", 5)):
                sync()
                t0 = time.perf_counter()
                v = velocity(model, x, 0.5, y, g)
                x = x + (-0.05) * v
                sync()
                ms.append((time.perf_counter() - t0) * 1000)
        print(json.dumps({"ms": ms}), flush=True)


if __name__ == "__main__":
    main()
