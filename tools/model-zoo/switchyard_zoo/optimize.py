"""Graph rewrites of exported dense parts that ONNX Runtime does not do by itself.

  python3 -m switchyard_zoo.optimize ../../models/dit-moe-fmnist    # in place, updates the manifest

The legacy exporter writes nn.Linear on a [B, T, D] input as MatMul + Add, which ONNX
Runtime leaves unfused (the bias add alone took 5 of 46 ms of a 256-row dense call),
and attention as a dozen reshapes, gathers, matmuls and a softmax. Rewritten:

- attention (qkv MatMul + Add ... reshape before proj) -> com.microsoft.Attention;
- every other MatMul + Add with a 1-D bias on a [B, T, K] input -> Reshape [-1, K],
  Gemm, Reshape [-1, T, N].

A rewrite is kept only when onnxruntime gives the same outputs as the original graph
(max abs difference <= TOLERANCE at several batch sizes); on the reference model they
are bitwise equal and a dense call is 8-12 % faster.
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

TOLERANCE = 1e-6


def fuse_attention(model, heads):
    """Replaces the exporter's attention subgraph with one Attention node; False if absent."""
    g = model.graph
    by_name = {n.name: n for n in g.node}
    qkv, add, proj = by_name.get("/qkv/MatMul"), by_name.get("/qkv/Add"), by_name.get("/proj/MatMul")
    if not (qkv and add and proj):
        return False
    bias = [x for x in add.input if x != qkv.output[0]]
    if len(bias) != 1:
        return False
    att = helper.make_node("Attention", [qkv.input[0], qkv.input[1], bias[0]], [proj.input[0]],
                           name="/attention", domain="com.microsoft", num_heads=heads)
    nodes = [n for n in g.node if proj.input[0] not in n.output]
    nodes.insert(nodes.index(proj), att)
    _replace_nodes(model, nodes)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return True


def fuse_linear(model, tokens):
    """MatMul + 1-D bias Add on [B, T, K] inputs -> Reshape, Gemm, Reshape. Returns the count."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    users = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    out, dropped, count = [], set(), 0
    for n in g.node:
        if id(n) in dropped:
            continue
        nxt = users.get(n.output[0], []) if n.op_type == "MatMul" else []
        if n.op_type == "MatMul" and n.input[1] in inits and len(nxt) == 1 and nxt[0].op_type == "Add":
            add = nxt[0]
            bias = [x for x in add.input if x != n.output[0]]
            if len(bias) == 1 and bias[0] in inits and len(inits[bias[0]].dims) == 1:
                k, m = inits[n.input[1]].dims
                p = n.name + "_2d"
                g.initializer.append(numpy_helper.from_array(np.array([-1, k], dtype=np.int64), p + "_in_shape"))
                g.initializer.append(numpy_helper.from_array(np.array([-1, tokens, m], dtype=np.int64), p + "_out_shape"))
                out.append(helper.make_node("Reshape", [n.input[0], p + "_in_shape"], [p + "_in"], name=p + "_reshape_in"))
                out.append(helper.make_node("Gemm", [p + "_in", n.input[1], bias[0]], [p + "_out"], name=p + "_gemm"))
                out.append(helper.make_node("Reshape", [p + "_out", p + "_out_shape"], [add.output[0]], name=p + "_reshape_out"))
                dropped.add(id(add))
                count += 1
                continue
        out.append(n)
    _replace_nodes(model, out)
    return count


def _replace_nodes(model, nodes):
    """Sets the graph's nodes, dropping what no output depends on (and unused initializers)."""
    g = model.graph
    needed = {o.name for o in g.output}
    keep = []
    for n in reversed(nodes):
        if any(o in needed for o in n.output):
            keep.append(n)
            needed.update(n.input)
    keep.reverse()
    del g.node[:]
    g.node.extend(keep)
    used = {i for n in keep for i in n.input}
    inits = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(inits)


def _session(model_bytes):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def max_difference(original, rewritten, tokens, dim, batches=(1, 7, 64), seed=0):
    """Largest abs difference between the two graphs' outputs on random h, c."""
    a, b = _session(original.SerializeToString()), _session(rewritten.SerializeToString())
    rng = np.random.default_rng(seed)
    worst = 0.0
    for batch in batches:
        feeds = {"h": rng.standard_normal((batch, tokens, dim), dtype=np.float32),
                 "c": rng.standard_normal((batch, dim), dtype=np.float32)}
        for x, y in zip(a.run(None, feeds), b.run(None, feeds)):
            worst = max(worst, float(np.abs(x - y).max()))
    return worst


def optimize_dense(path, heads, tokens, dim):
    """Rewrites one dense part in place when the result matches; returns a line saying what happened."""
    original = onnx.load(path)
    model = onnx.load(path)
    attention = fuse_attention(model, heads)
    linear = fuse_linear(model, tokens)
    if not attention and linear == 0:
        return f"{os.path.basename(path)}: nothing to rewrite"
    onnx.checker.check_model(model)
    diff = max_difference(original, model, tokens, dim)
    if diff > TOLERANCE:
        return f"{os.path.basename(path)}: kept the original (rewritten outputs differ by {diff:.2e})"
    onnx.save(model, path)
    return f"{os.path.basename(path)}: attention {'fused' if attention else 'as is'}, {linear} linear layers to Gemm, max difference {diff:.1e}"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def optimize_model_dir(model_dir, log=print):
    """Rewrites every dense part listed in model_dir/manifest.json and updates its sha256 and size."""
    manifest_path = os.path.join(model_dir, "manifest.json")
    with open(manifest_path) as f:
        manifest = json.load(f)
    arch = manifest["architecture"]
    for part in manifest["parts"]:
        if part["kind"] != "dense":
            continue
        path = os.path.join(model_dir, part["file"])
        log(optimize_dense(path, arch["numHeads"], arch["tokens"], arch["hiddenSize"]))
        part["sha256"] = sha256(path)
        part["bytes"] = os.path.getsize(path)
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", help="directory with manifest.json (rewritten in place)")
    args = ap.parse_args(argv)
    optimize_model_dir(args.model_dir)


if __name__ == "__main__":
    sys.exit(main())
