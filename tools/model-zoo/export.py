"""Export the trained model as separately executable ONNX parts + manifest, golden
tensors, routing traces, the quality classifier and its test-set feature statistics.

  python3 export.py --build build --out ../../models/dit-moe-fmnist

Every exported part is checked against PyTorch with onnxruntime before it is written
to the manifest (tracing a whole MoE layer can silently drop expert branches, so each
part is exported on its own).
"""
import argparse
import json
import os
import shutil
import time
import warnings

import numpy as np
import onnxruntime as ort
import torch

from switchyard_zoo import data, optimize, safetensors
from switchyard_zoo.model import NULL_LABEL, Classifier, MoEDiT, route
from switchyard_zoo.sampling import sample

OPSET = 17
warnings.filterwarnings("ignore")


def export_part(module, args, path, input_names, output_names, dynamic_axes):
    torch.onnx.export(module, args, path, input_names=input_names, output_names=output_names,
                      dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False,
                      do_constant_folding=True)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = {n: a.numpy() for n, a in zip(input_names, args)}
    got = sess.run(output_names, feeds)
    with torch.no_grad():
        ref = module(*args)
    ref = ref if isinstance(ref, tuple) else (ref,)
    err = max(float(np.abs(g - r.numpy()).max()) for g, r in zip(got, ref))
    if err > 1e-5:
        raise RuntimeError(f"{path}: onnxruntime differs from PyTorch by {err}")
    return err


def tensor_spec(name, dtype, shape):
    return {"name": name, "dtype": dtype, "shape": shape}


sha256 = optimize.sha256


class TraceRecorder:
    """Collects per-call routing for the trace format (see models/README.md)."""

    def __init__(self):
        self.records = []  # (request, step, branch, label, t, experts [L,T,K], weights [L,T,K])

    def hook(self, requests, labels, guidance):
        def on_call(step, t):
            rec = []
            def finish():
                idx = torch.stack([r[0] for r in rec], 1)  # [B', L, T, K]
                w = torch.stack([r[1] for r in rec], 1)
                b = len(requests)
                branches = [0] if guidance == 1.0 else [0, 1]
                for br in branches:
                    for i, req in enumerate(requests):
                        j = br * b + i
                        self.records.append((req, step, br, NULL_LABEL if br else labels[i], t,
                                             idx[j].numpy(), w[j].numpy()))
            self._pending = (rec, finish)
            return rec
        return on_call

    def flush(self):
        if getattr(self, "_pending", None):
            self._pending[1]()
            self._pending = None


def record_traces(model, n_per_class, steps, guidance, seed, meta):
    torch.manual_seed(seed)
    rec = TraceRecorder()
    labels = [c for c in range(10) for _ in range(n_per_class)]
    for start in range(0, len(labels), 20):
        lab = labels[start:start + 20]
        reqs = list(range(start, start + len(lab)))
        noise = torch.randn(len(lab), 1, 28, 28)
        hook = rec.hook(reqs, lab, guidance)
        def on_call(step, t):
            rec.flush()
            return hook(step, t)
        sample(model, noise, torch.tensor(lab), steps=steps, sampler="euler", guidance=guidance,
               on_call=on_call)
        rec.flush()
    r = rec.records
    tensors = {
        "request": np.array([x[0] for x in r], dtype=np.int32),
        "step": np.array([x[1] for x in r], dtype=np.int32),
        "branch": np.array([x[2] for x in r], dtype=np.uint8),
        "label": np.array([x[3] for x in r], dtype=np.int32),
        "t": np.array([x[4] for x in r], dtype=np.float32),
        "experts": np.stack([x[5] for x in r]).astype(np.uint8),
        "weights": np.stack([x[6] for x in r]).astype(np.float16),
    }
    return tensors


def routing_stats(tr, experts):
    """Figures that placement and caching depend on, from a trace (conditional branch)."""
    cond = tr["branch"] == 0
    ex = tr["experts"][cond]  # [N, L, T, K]
    req, step = tr["request"][cond], tr["step"][cond]
    n, layers, tokens, k = ex.shape
    distinct = np.mean([[len(np.unique(ex[i, l])) for l in range(layers)] for i in range(n)])
    load = np.stack([np.bincount(ex[:, l].reshape(-1), minlength=experts) for l in range(layers)])
    imbalance = (load.max(1) / load.mean(1)).tolist()
    order = np.lexsort((step, req))
    ex_sorted, req_s, step_s = ex[order], req[order], step[order]
    same = (req_s[1:] == req_s[:-1]) & (step_s[1:] == step_s[:-1] + 1)
    keep = (ex_sorted[1:][same][..., 0] == ex_sorted[:-1][same][..., 0]).mean()
    first = step_s[:-1][same] == 0
    keep_first = (ex_sorted[1:][same][first][..., 0] == ex_sorted[:-1][same][first][..., 0]).mean()
    return {
        "distinct_experts_per_image_per_layer": round(float(distinct), 2),
        "experts": experts,
        "expert_load_max_over_mean_per_layer": [round(x, 3) for x in imbalance],
        "top1_kept_between_adjacent_steps": round(float(keep), 4),
        "top1_kept_first_to_second_step": round(float(keep_first), 4),
    }


@torch.no_grad()
def quality(model, clf, stats, n_per_class, steps, sampler, guidance, seed):
    torch.manual_seed(seed)
    correct = np.zeros(10)
    feats = []
    calls = 0
    for c in range(10):
        noise = torch.randn(n_per_class, 1, 28, 28)
        x, calls = sample(model, noise, torch.full((n_per_class,), c), steps=steps, sampler=sampler,
                          guidance=guidance)
        logits, f = clf(x.clamp(-1, 1))
        correct[c] = (logits.argmax(1) == c).float().mean().item()
        feats.append(f.numpy().astype(np.float64))
    f = np.concatenate(feats)
    return {"mean_accuracy": round(float(correct.mean()), 4),
            "per_class_accuracy": [round(float(a), 3) for a in correct],
            "frechet_distance": round(frechet(f.mean(0), np.cov(f, rowvar=False), stats["mu"], stats["cov"]), 3),
            "model_calls_per_image": calls}


def frechet(mu1, s1, mu2, s2):
    def sqrtm_psd(m):
        w, v = np.linalg.eigh((m + m.T) / 2)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    r1 = sqrtm_psd(s1)
    tr = np.trace(sqrtm_psd(r1 @ s2 @ r1))
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default="build")
    p.add_argument("--out", default="../../models/dit-moe-fmnist")
    p.add_argument("--trace-per-class", type=int, default=10)
    p.add_argument("--holdout-per-class", type=int, default=8)
    p.add_argument("--quality-per-class", type=int, default=100)
    args = p.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(1234)
    ck = torch.load(os.path.join(args.build, "flow.pt"))
    cfg = ck["config"]
    model = MoEDiT(**cfg)
    model.load_state_dict(ck["state"])
    model.eval()
    clf = Classifier()
    clf.load_state_dict(torch.load(os.path.join(args.build, "classifier.pt")))
    clf.eval()
    out = args.out
    if os.path.exists(out):
        shutil.rmtree(out)
    for d in ("parts", "golden", "traces"):
        os.makedirs(os.path.join(out, d))
    D, L, E, K = cfg["dim"], cfg["depth"], cfg["experts"], cfg["top_k"]
    T = (28 // cfg["patch"]) ** 2
    parts, errors, golden = [], {}, {}

    # Golden batch: 3 images at different t and labels (one unconditional).
    x = torch.randn(3, 1, 28, 28)
    t = torch.tensor([0.9, 0.5, 0.1])
    y = torch.tensor([3, 7, NULL_LABEL])
    img = ["batch", 1, 28, 28]

    def add(kind, name, module, inputs, in_specs, out_specs, dyn, layer=None, expert=None):
        path = f"parts/{name}.onnx"
        errors[name] = export_part(module, tuple(inputs), os.path.join(out, path),
                                   [s["name"] for s in in_specs], [s["name"] for s in out_specs], dyn)
        entry = {"name": name, "kind": kind, "file": path, "inputs": in_specs, "outputs": out_specs,
                 "bytes": os.path.getsize(os.path.join(out, path)),
                 "sha256": sha256(os.path.join(out, path))}
        if layer is not None:
            entry["layer"] = layer
        if expert is not None:
            entry["expert"] = expert
        parts.append(entry)
        with torch.no_grad():
            res = module(*inputs)
        res = res if isinstance(res, tuple) else (res,)
        for s, a in zip(in_specs, inputs):
            golden[f"{name}.in.{s['name']}"] = a.numpy()
        for s, a in zip(out_specs, res):
            golden[f"{name}.out.{s['name']}"] = a.numpy()
        return res

    h, c = add("embed", "embed", model.embed, [x, t, y],
               [tensor_spec("x", "float32", img), tensor_spec("t", "float32", ["batch"]),
                tensor_spec("y", "int64", ["batch"])],
               [tensor_spec("h", "float32", ["batch", T, D]), tensor_spec("c", "float32", ["batch", D])],
               {"x": {0: "batch"}, "t": {0: "batch"}, "y": {0: "batch"}, "h": {0: "batch"}, "c": {0: "batch"}})
    for l, blk in enumerate(model.blocks):
        h1, u, logits, gate = add(
            "dense", f"block{l}.dense", blk.dense, [h, c],
            [tensor_spec("h", "float32", ["batch", T, D]), tensor_spec("c", "float32", ["batch", D])],
            [tensor_spec("h1", "float32", ["batch", T, D]), tensor_spec("u", "float32", ["batch", T, D]),
             tensor_spec("logits", "float32", ["batch", T, E]), tensor_spec("gate", "float32", ["batch", D])],
            {n: {0: "batch"} for n in ("h", "c", "h1", "u", "logits", "gate")}, layer=l)
        rows = u.reshape(-1, D)[torch.randperm(3 * T)[:5]].contiguous()
        for e, ex in enumerate(blk.experts):
            add("expert", f"block{l}.expert{e}", ex, [rows],
                [tensor_spec("u", "float32", ["rows", D])], [tensor_spec("y", "float32", ["rows", D])],
                {"u": {0: "rows"}, "y": {0: "rows"}}, layer=l, expert=e)
        if blk.shared is not None:
            add("shared", f"block{l}.shared", blk.shared, [rows],
                [tensor_spec("u", "float32", ["rows", D])], [tensor_spec("y", "float32", ["rows", D])],
                {"u": {0: "rows"}, "y": {0: "rows"}}, layer=l)
        with torch.no_grad():
            h, _ = blk(h, c)
        golden[f"block{l}.out.h"] = h.numpy()
    add("final", "final", model.final, [h, c],
        [tensor_spec("h", "float32", ["batch", T, D]), tensor_spec("c", "float32", ["batch", D])],
        [tensor_spec("v", "float32", img)], {"h": {0: "batch"}, "c": {0: "batch"}, "v": {0: "batch"}})
    with torch.no_grad():
        golden["model.out.v"] = model(x, t, y)[0].numpy()
    safetensors.save(os.path.join(out, "golden/parts.safetensors"), golden,
                     {"description": "inputs/outputs of every part; block{l}.out.h is the full block output"})

    # Golden full sampling runs (noise given explicitly: the runtime has its own RNG).
    runs = {}
    for sampler, steps in (("euler", 20), ("heun", 10), ("pc", 10)):
        noise = torch.randn(4, 1, 28, 28)
        labels = torch.tensor([0, 3, 7, 9])
        xs, calls = sample(model, noise, labels, steps=steps, sampler=sampler, guidance=2.0, shift=1.0)
        runs[sampler] = {"steps": steps, "guidance": 2.0, "shift": 1.0, "calls": calls}
        safetensors.save(os.path.join(out, f"golden/sample-{sampler}.safetensors"),
                         {"noise": noise.numpy(), "labels": labels.numpy().astype(np.int64), "x": xs.numpy()},
                         {"sampler": sampler, "steps": steps, "guidance": 2.0, "shift": 1.0, "calls": calls})

    # Routing traces: two disjoint sets of requests (one to solve placements on, one held out).
    trace_meta = {"format": "switchyard-trace", "version": 1, "layers": L, "experts": E, "top_k": K,
                  "tokens": T, "model": "dit-moe-fmnist"}
    traces = []
    for name, seed, per_class in (("solve", 100, args.trace_per_class), ("holdout", 200, args.holdout_per_class)):
        tr = record_traces(model, per_class, 20, 2.0, seed, trace_meta)
        file = f"traces/{name}.safetensors"
        safetensors.save(os.path.join(out, file), tr, {**trace_meta, "sampler": "euler", "steps": 20,
                                                       "guidance": 2.0})
        traces.append({"name": name, "file": file, "records": int(len(tr["request"])),
                       "requests": int(tr["request"].max() + 1)})
    stats = routing_stats(tr, E)

    # Classifier + test-set feature statistics for the Fréchet distance.
    xt, yt = map(torch.from_numpy, data.load("test"))
    with torch.no_grad():
        logits, f = clf(xt)
    clf_acc = float((logits.argmax(1) == yt).float().mean())
    f = f.numpy().astype(np.float64)
    fstats = {"mu": f.mean(0), "cov": np.cov(f, rowvar=False)}
    cx = xt[:4]
    torch.onnx.export(clf, (cx,), os.path.join(out, "classifier.onnx"), input_names=["x"],
                      output_names=["logits", "features"], dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"},
                      "features": {0: "batch"}}, opset_version=OPSET, dynamo=False)
    safetensors.save(os.path.join(out, "classifier-stats.safetensors"),
                     {"mu": fstats["mu"].astype(np.float32), "cov": fstats["cov"].astype(np.float32),
                      "probe.x": cx.numpy(), "probe.logits": clf(cx)[0].detach().numpy()},
                     {"description": "Fashion-MNIST test-set features of the classifier (10000 images)"})

    t0 = time.time()
    q = {}
    for sampler, steps in (("euler", 20),):
        q[f"{sampler}-{steps}-g2"] = quality(model, clf, fstats, args.quality_per_class, steps, sampler, 2.0, 7)
    quality_seconds = round(time.time() - t0, 1)

    manifest = {
        "format": "switchyard.model/v1",
        "name": "dit-moe-fmnist",
        "version": "1",
        "description": "Class-conditional rectified-flow DiT with MoE FFNs, trained on Fashion-MNIST",
        "image": {"channels": 1, "height": 28, "width": 28, "valueRange": [-1, 1]},
        "architecture": {"patch": cfg["patch"], "tokens": T, "hiddenSize": D, "numLayers": L,
                         "numHeads": cfg["heads"]},
        "conditioning": {"kind": "class", "numClasses": 10, "nullLabel": NULL_LABEL,
                         "classNames": data.CLASS_NAMES},
        "moe": {"numExperts": E, "topK": K, "expertHidden": cfg["expert_hidden"],
                "sharedExpert": cfg["shared_hidden"] > 0, "sharedHidden": cfg["shared_hidden"],
                "routing": "softmax-topk-renormalized"},
        "sampling": {"defaultSteps": 20, "defaultSampler": "euler", "defaultGuidance": 2.0,
                     "defaultShift": 1.0, "maxSteps": 1000, "samplers": ["euler", "heun", "pc"]},
        "parts": parts,
        "golden": {"parts": "golden/parts.safetensors",
                   "samples": {s: f"golden/sample-{s}.safetensors" for s in runs}},
        "traces": traces,
        "classifier": {"file": "classifier.onnx", "stats": "classifier-stats.safetensors",
                       "testAccuracy": round(clf_acc, 4), "featureDim": int(f.shape[1])},
    }
    with open(os.path.join(out, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
    # Graph rewrites ONNX Runtime does not do itself (fused attention, Gemm), each kept
    # only if onnxruntime gives the original's outputs; updates the manifest's sha256s.
    optimize.optimize_model_dir(out)
    report = {"max_export_error": max(errors.values()), "routing": stats, "quality": q,
              "quality_seconds": quality_seconds, "classifier_test_accuracy": clf_acc,
              "golden_runs": runs, "trained_steps": ck.get("step")}
    with open(os.path.join(args.build, "export-report.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
