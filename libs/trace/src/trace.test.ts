import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Code } from "@switchyard/errors";
import { caught } from "@switchyard/errors/testing";
import { type Trace, encodeNpyTrace, encodeTrace, mergeTraces, parseNpyTrace, parseTrace, readTrace } from "./format";
import { cfgPairOverlap, coActivation, coActivationMatrix, expertLoad, transitions } from "./stats";
import { parseSafeTensors } from "@switchyard/tensor";
import { syntheticTrace as synthetic } from "./testing";

const MODEL = new URL("../../../models/dit-moe-fmnist", import.meta.url).pathname;

describe("trace readers", () => {
  it("read the runtime's own format (the committed holdout trace)", () => {
    const t = readTrace(join(MODEL, "traces/holdout.safetensors"));
    expect([t.layers, t.experts, t.topK, t.tokens]).toEqual([6, 32, 2, 49]);
    expect(t.records).toBe(80 * 20 * 2); // 80 requests × 20 steps × (cond + uncond)
    expect(t.weights).toBeDefined();
    expect(Math.max(...t.request) + 1).toBe(80);
  });

  it("read the [tokens, layers, top_k] int16 .npy layout of LLM engines and reject bad ones", () => {
    const header = "{'descr': '<i2', 'fortran_order': False, 'shape': (2, 3, 2), }";
    const pad = 16 - ((10 + header.length + 1) % 16);
    const h = header + " ".repeat(pad) + "\n";
    const bytes = new Uint8Array(10 + h.length + 24);
    bytes.set([0x93, ...Buffer.from("NUMPY"), 1, 0]);
    new DataView(bytes.buffer).setUint16(8, h.length, true);
    bytes.set(Buffer.from(h), 10);
    const vals = [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3];
    vals.forEach((v, i) => new DataView(bytes.buffer).setInt16(10 + h.length + 2 * i, v, true));
    const t = parseNpyTrace(bytes, 8);
    expect([t.records, t.layers, t.tokens, t.topK]).toEqual([2, 3, 1, 2]);
    expect(Array.from(t.routing)).toEqual(vals);
    expect(caught(() => parseNpyTrace(bytes, 5)).message).toContain("outside 0..4");
    expect(caught(() => parseNpyTrace(new Uint8Array(4), 8)).code).toBe(Code.InvalidArgument);
  });
});

describe("statistics", () => {
  it("count expert load and inter-layer transitions", () => {
    const t = synthetic([[[[0, 1]], [[2, 3]]], [[[0, 2]], [[2, 1]]]], 4);
    expect(expertLoad(t).map((l) => Array.from(l))).toEqual([[2, 1, 1, 0], [0, 1, 2, 1]]);
    const tr = transitions(t)[0]!;
    expect(tr[0 * 4 + 2]).toBe(2); // top-1 expert 0 → top-1 expert 2, twice
  });

  it("co-activation: disjoint groups overlap 0, identical ones 1; the matrix counts records using both", () => {
    // requests 0 and 1 use experts {0,1}; request 2 uses {2,3}; one layer, one token, top-2
    const t = synthetic([[[[0, 1]]], [[[1, 0]]], [[[2, 3]]]], 4);
    const byReq = coActivation(t, "request");
    expect(byReq.groups.map((g) => g.distinctPerLayer)).toEqual([2, 2, 2]);
    expect(byReq.meanOverlap).toBeCloseTo((1 + 0 + 0) / 3); // pairs (0,1) identical, (0,2) and (1,2) disjoint
    const m = coActivationMatrix(t, 0);
    expect(m[0 * 4 + 1]).toBe(2);
    expect(m[1 * 4 + 0]).toBe(2);
    expect(m[2 * 4 + 3]).toBe(1);
    expect(m[0 * 4 + 3]).toBe(0);
    expect(m[0]).toBe(2); // diagonal: records using expert 0
    const byBand = coActivation({ ...t, t: Float32Array.from([0.1, 0.9, 0.95]) }, "band", { bands: 2 });
    expect(byBand.groups.map((g) => [g.key, g.records])).toEqual([["t 0.00–0.50", 1], ["t 0.50–1.00", 2]]);
  });
});

describe("CFG pairs (#18)", () => {
  it("compare a pair's conditional and unconditional routing per token and layer", () => {
    // request 0: one pair (records 0 and 1), two layers, two tokens, top-2; record 2 has no partner
    const t0 = synthetic(
      [
        [[[0, 1], [2, 3]], [[0, 1], [2, 3]]],
        [[[1, 0], [2, 4]], [[3, 5], [2, 3]]],
        [[[0, 1], [0, 1]], [[0, 1], [0, 1]]],
      ],
      6,
      [0, 0, 1],
    );
    const t = { ...t0, branch: Uint8Array.from([0, 1, 0]) };
    const o = cfgPairOverlap(t);
    expect(o.pairs).toBe(1);
    expect(o.slots).toBe(4);
    expect(o.sameSet).toBe(2 / 4); // layer 0 token 0 ({0,1} both ways) and layer 1 token 1
    expect(o.sameFirst).toBe(2 / 4); // layer 0 token 1 (2 = 2) and layer 1 token 1
    expect(o.sharedFraction).toBe((1 + 0.5 + 0 + 1) / 4);
    expect(o.sameSetByLayer).toEqual([0.5, 0.5]);
  });

  it("measure the committed holdout trace", () => {
    const o = cfgPairOverlap(readTrace(join(MODEL, "traces/holdout.safetensors")));
    expect(o.pairs).toBeGreaterThan(0);
    expect(o.sameSet).toBeGreaterThan(0);
    expect(o.sameSet).toBeLessThan(1);
  });
});

describe("trace export", () => {
  it("merges traces with distinct requests and round-trips both formats", () => {
    const a = readTrace(join(MODEL, "traces/solve.safetensors"));
    const b = readTrace(join(MODEL, "traces/holdout.safetensors"));
    const m = mergeTraces([a, b]);
    expect(m.records).toBe(a.records + b.records);
    const reqs = (t: Trace) => new Set(Array.from(t.request)).size;
    expect(reqs(m)).toBe(reqs(a) + reqs(b));
    const back = parseTrace(parseSafeTensors(encodeTrace(m, "dit-moe-fmnist")));
    expect(back.routing).toEqual(m.routing);
    expect(back.request).toEqual(m.request);
    expect(back.weights).toBeDefined();
    const npy = encodeNpyTrace(b);
    const hlen = new DataView(npy.buffer).getUint16(8, true);
    expect((10 + hlen) % 64).toBe(0); // numpy's alignment
    const tokens = parseNpyTrace(npy, b.experts);
    expect(tokens.records).toBe(b.records * b.tokens);
    // token 3 of record 2, layer 4, choice 1
    expect(tokens.routing[((2 * b.tokens + 3) * b.layers + 4) * b.topK + 1]).toBe(b.routing[((2 * b.layers + 4) * b.tokens + 3) * b.topK + 1]);
    const other = { ...b, experts: 64 };
    expect(() => mergeTraces([a, other])).toThrow("traces[1] has experts 64, traces[0] has 32");
  });
});
