import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Code } from "@switchyard/errors";
import { caught } from "@switchyard/errors/testing";
import {
  type Placement, type Trace, chooseHomes, coActivation, coActivationMatrix, contiguousPlacement, encodeNpyTrace, encodeTrace, expertLoad, loadGreedyPlacement, mergeTraces, parseNpyTrace, parseTrace,
  placementCost, readTrace, roundRobinPlacement, transitions,
} from "./index";
import { parseSafeTensors } from "@switchyard/tensor";

const MODEL = new URL("../../../models/dit-moe-fmnist", import.meta.url).pathname;

/** A trace built by hand: records × layers × tokens × K expert ids. */
function synthetic(routing: number[][][][], experts: number, request?: number[]): Trace {
  const records = routing.length;
  const layers = routing[0]!.length;
  const tokens = routing[0]![0]!.length;
  const topK = routing[0]![0]![0]!.length;
  return {
    layers, experts, topK, tokens, records,
    request: Int32Array.from(request ?? routing.map((_, i) => i)),
    step: new Int32Array(records), branch: new Uint8Array(records), label: new Int32Array(records), t: new Float32Array(records),
    routing: Int16Array.from(routing.flat(3)), weights: undefined,
  };
}


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

describe("baselines", () => {
  it("fill every worker with the same number of experts", () => {
    const t = readTrace(join(MODEL, "traces/solve.safetensors"));
    for (const p of [contiguousPlacement(4, 6, 32), roundRobinPlacement(4, 6, 32), loadGreedyPlacement(t, 4)]) {
      for (let l = 0; l < 6; l++) {
        const counts = [0, 0, 0, 0];
        for (let e = 0; e < 32; e++) counts[p.owner[l * 32 + e]!]!++;
        expect(counts).toEqual([8, 8, 8, 8]);
      }
    }
    expect(caught(() => contiguousPlacement(3, 6, 32)).field).toBe("workers");
  });

  it("load-only greedy balances load better than contiguous", () => {
    const t = readTrace(join(MODEL, "traces/solve.safetensors"));
    const c = placementCost(t, contiguousPlacement(4, 6, 32), { hidden: 128 });
    const g = placementCost(t, loadGreedyPlacement(t, 4), { hidden: 128 });
    expect(g.meanImbalance).toBeLessThan(c.meanImbalance);
    expect(g.imbalance).toBeLessThan(1.1);
  });
});

describe("cost model", () => {
  // 2 workers, 4 experts (w0: 0,1; w1: 2,3), 1 layer, 1 token, top-2.
  const p: Placement = contiguousPlacement(2, 1, 4);

  it("counts rows out per remote owner and rows back per remote assignment", () => {
    // request 0 uses experts 0 and 1 (both on w0); request 1 uses 2 and 3 (both on w1)
    const t = synthetic([[[[0, 1]]], [[[2, 3]]]], 4);
    const local = placementCost(t, p, { hidden: 8 });
    expect(Array.from(local.homes)).toEqual([0, 1]); // affinity homing puts each where its experts are
    expect(local.bytesPerImage).toBe(0);
    const rr = placementCost(t, p, { hidden: 8, homing: "round-robin" });
    expect(rr.bytesPerImage).toBe(0);
    // both on w1 under round-robin for a request that needs w1 only when it is request 0
    const t2 = synthetic([[[[2, 3]]], [[[0, 1]]]], 4);
    const rr2 = placementCost(t2, p, { hidden: 8, homing: "round-robin" });
    expect(rr2.rowsOutPerImage).toBe(1); // one row sent per image
    expect(rr2.rowsBackPerImage).toBe(2); // two expert outputs back
    expect(rr2.bytesPerImage).toBe((1 + 2) * 8 * 4);
    expect(rr2.remoteFraction).toBe(1);
  });

  it("charges the token-stays scheme its attention all-gather", () => {
    const t = synthetic([[[[0, 1]]]], 4);
    const c = placementCost(t, p, { hidden: 8 });
    expect(c.tokenStaysBytesPerImage).toBe(2 * 8 * (2 - 1) * 4); // K and V to the one other worker
  });

  it("keeps homes within the balance bound", () => {
    const t = synthetic(Array.from({ length: 10 }, () => [[[0, 1]]]), 4); // everyone prefers w0
    const homes = chooseHomes(t, p, "affinity", 0.1);
    expect(homes.filter((h) => h === 0).length).toBeLessThanOrEqual(Math.ceil(5 * 1.1));
  });

  it("measures the reference model's traces under the baselines", () => {
    const t = readTrace(join(MODEL, "traces/holdout.safetensors"));
    const c = placementCost(t, contiguousPlacement(4, 6, 32), { hidden: 128 });
    expect(c.images).toBe(80);
    expect(c.bytesPerImage).toBeGreaterThan(0);
    expect(c.tokenStaysBytesPerImage).toBeGreaterThan(c.bytesPerImage); // the all-gather dominates for a DiT
    expect(() => placementCost(t, contiguousPlacement(4, 6, 64), { hidden: 128 })).toThrow(/placement is for/);
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
