import { describe, expect, it } from "vitest";
import { createClassPriors } from "@switchyard/expert-cache";
import type { TickResponseMsg } from "@switchyard/proto";
import { type RequestSpec, admit, applyReuse, reuseBytesOf, reuseStateBytes } from "./policy";
import type { Live } from "./request";
import { type TickCall, buildTick, carriedReleases, updateRequests } from "./tick";

/** #18: the residual-reuse state lives with the request in the scheduler. */
const L = 2;
const E = 4;
const TK = 2; // tokens × topK
const P = 4;

function live(id: string, over: Partial<RequestSpec> = {}): Live {
  const spec: RequestSpec = { id, params: { sampler: "euler", steps: 4, shift: 1 }, label: 1, guidance: 2, priority: 0, deadlineMs: undefined, noise: [new Float32Array(P)], reuseThreshold: 0.2, ...over };
  return { state: admit(spec, 0, 0), msg: { previewInterval: 0 } as Live["msg"], computeMs: 0, tickMs: 0, cancelled: false, preview: [], affinity: undefined, predicted: undefined, waited: 0 };
}
/** A state of `floats` floats per tensor; with `previous`, its earlier evaluation too (as the engine sends after an image's second full one). */
const state = (fill: number, floats = 8, previous = false) => ({
  rows: 2, t: 0.5, probe: new Float32Array(floats).fill(fill), residual: new Float32Array(floats).fill(-fill),
  ...(previous ? { previous: { t: 0.75, probe: new Float32Array(floats).fill(fill + 1), residual: new Float32Array(floats).fill(-fill - 1) } } : {}),
});

function response(items: number, reuse: TickResponseMsg["reuse"], routing: number[]): TickResponseMsg {
  return { velocities: new Float32Array(items * P), routing: Int16Array.from(routing), routingWeights: new Float32Array(routing.length), denseMs: 0, expertMs: 0, ...(reuse ? { reuse } : {}) };
}

function update(requests: Map<string, Live>, call: TickCall, res: TickResponseMsg, maxReuseBytes = Infinity) {
  const evals = new Map(call.items.map((it) => [`${it.requestId}/${it.imageIndex}`, { x: new Float32Array(P), t: 1 }]));
  const reuseBytes = [...requests.values()].reduce((s, r) => s + reuseBytesOf(r.state), 0);
  return updateRequests(requests, [{ call, res }], evals, {
    layers: L, experts: E, tokensTopK: TK, imageSize: P, owners: Array.from({ length: L * E }, () => "w0"), replicas: undefined,
    tickMs: 1, tickItems: call.items.length, priors: createClassPriors(L * E), reuseBytes, maxReuseBytes,
  });
}

const callOf = (ids: string[], home = "w0", tick = 7): TickCall => ({ home, items: ids.map((requestId) => ({ requestId, imageIndex: 0, home, rows: 2 })), req: { tick } as TickCall["req"] });

describe("residual-reuse state in the scheduler", () => {
  it("is sent with the image's next evaluation, replaced by a full one's, kept by a reused one", () => {
    const a = live("a");
    const requests = new Map([["a", a]]);
    const frame = { tick: 1, homes: ["w0"], planVersion: 1, owners: [] };
    // first evaluation: the threshold, no state
    let built = buildTick(new Map([["w0", callOf(["a"]).items]]), (id) => requests.get(id)!.state, () => undefined, ["w0"], L * E, () => frame);
    expect(built.calls[0]!.req.items[0]!.reuse).toEqual({ threshold: 0.2 });
    const s1 = state(1);
    let u = update(requests, callOf(["a"]), response(1, [{ item: 0, reused: false, distance: NaN, state: s1 }], [0, 1, 2, 3]));
    expect(u.reuse).toEqual({ reused: 0, full: 1, dropped: 0 });
    expect(a.state.images[0]!.reuse).toEqual(s1);
    expect(a.state.images[0]!.reuseAt).toEqual({ worker: "w0", tick: 7 }); // where it was made (the call's tick)
    expect(a.state.images[0]!.sampler.step).toBe(1); // the velocity was applied too
    const kept = a.state.images[0]!.reuse;
    // the next evaluation on the worker that made it names it by its tick; elsewhere it carries it
    built = buildTick(new Map([["w0", callOf(["a"]).items]]), (id) => requests.get(id)!.state, () => undefined, ["w0"], L * E, () => frame);
    expect(built.calls[0]!.req.items[0]!.reuse).toEqual({ threshold: 0.2, stateTick: 7 });
    built = buildTick(new Map([["w1", callOf(["a"], "w1").items]]), (id) => requests.get(id)!.state, () => undefined, ["w0", "w1"], L * E, () => frame);
    expect(built.calls[0]!.req.items[0]!.reuse).toEqual({ threshold: 0.2, state: kept });
    // reused (layer 1 skipped: -1): counted, state unchanged, layer 1's prediction kept from the full one
    u = update(requests, callOf(["a"]), response(1, [{ item: 0, reused: true, distance: 0.05 }], [2, 3, -1, -1]));
    expect(u.reuse).toEqual({ reused: 1, full: 0, dropped: 0 });
    expect(a.state.images[0]!.reuse).toBe(kept);
    expect(a.state.images[0]!.reusedEvals).toBe(1);
    expect([...a.predicted!].sort((x, y) => x - y)).toEqual([2, 3, E + 2, E + 3]);
    // a request without reuse carries nothing
    const b = live("b", { reuseThreshold: undefined });
    requests.set("b", b);
    built = buildTick(new Map([["w0", callOf(["b"]).items]]), (id) => requests.get(id)!.state, () => undefined, ["w0"], L * E, () => frame);
    expect("reuse" in built.calls[0]!.req.items[0]!).toBe(false);
  });

  it("is bounded: past maxReuseBytes a new state is dropped (the next evaluation is full), and a replaced one frees its bytes", () => {
    const a = live("a");
    const b = live("b");
    const requests = new Map([["a", a], ["b", b]]);
    const bytes = reuseBytesOf({ ...a.state, images: [{ ...a.state.images[0]!, reuse: state(1) }] }); // one state: 64 B
    const u = update(requests, callOf(["a", "b"]), response(2, [{ item: 0, reused: false, distance: NaN, state: state(1) }, { item: 1, reused: false, distance: NaN, state: state(2) }], [0, 0, 0, 0, 0, 0, 0, 0]), bytes);
    expect(u.reuse).toEqual({ reused: 0, full: 2, dropped: 1 });
    expect(a.state.images[0]!.reuse).toBeDefined();
    expect(b.state.images[0]!.reuse).toBeUndefined();
    // a's next full evaluation replaces its state within the same bound
    const s3 = state(3);
    update(requests, callOf(["a"]), response(1, [{ item: 0, reused: false, distance: 0.5, state: s3 }], [0, 0, 0, 0]), bytes);
    expect(a.state.images[0]!.reuse).toEqual(s3);
    // a state carrying its previous evaluation holds twice the bytes, and the bound counts
    // them: where the whole state does not fit, it is kept without its previous evaluation
    const s4 = state(4, 8, true);
    expect(reuseStateBytes(s4)).toBe(2 * bytes);
    const u2 = update(requests, callOf(["a"]), response(1, [{ item: 0, reused: false, distance: 0.5, state: s4 }], [0, 0, 0, 0]), bytes);
    expect(u2.reuse).toEqual({ reused: 0, full: 1, dropped: 0 });
    expect(a.state.images[0]!.reuse).toEqual({ rows: 2, t: 0.5, probe: s4.probe, residual: s4.residual });
    // with room for both, the whole state is kept
    update(requests, callOf(["a"]), response(1, [{ item: 0, reused: false, distance: 0.5, state: s4 }], [0, 0, 0, 0]), 2 * bytes);
    expect(a.state.images[0]!.reuse).toEqual(s4);
  });

  it("names what workers kept and will not be asked for again; a deferred item is not applied and carries its state next", () => {
    const a = live("a", { params: { sampler: "euler", steps: 8, shift: 1 } });
    const requests = new Map([["a", a]]);
    const frame = { tick: 1, homes: ["w0", "w1"], planVersion: 1, owners: [] };
    update(requests, callOf(["a"], "w0", 3), response(1, [{ item: 0, reused: false, distance: NaN, state: state(1) }], [0, 0, 0, 0]));
    // re-homed to w1: a full evaluation there replaces the state w0 made, which w0 may free
    let u = update(requests, callOf(["a"], "w1", 4), response(1, [{ item: 0, reused: false, distance: 0.3, state: state(2) }], [0, 0, 0, 0]));
    expect(Object.fromEntries(u.release)).toEqual({ w0: ["a/0"] });
    expect(a.state.images[0]!.reuseAt).toEqual({ worker: "w1", tick: 4 });
    // over the bound the new state is not kept: the worker that made it may free it
    u = update(requests, callOf(["a"], "w1", 5), response(1, [{ item: 0, reused: false, distance: 0.3, state: state(3) }], [0, 0, 0, 0]), 0);
    expect(u.reuse.dropped).toBe(1);
    expect(Object.fromEntries(u.release)).toEqual({ w1: ["a/0"] });
    expect(a.state.images[0]!.reuse).toBeUndefined();
    // a full evaluation again; then w1 no longer holds it and defers the item: nothing applied
    update(requests, callOf(["a"], "w1", 6), response(1, [{ item: 0, reused: false, distance: NaN, state: state(4) }], [0, 0, 0, 0]));
    const step = a.state.images[0]!.sampler.step;
    u = update(requests, callOf(["a"], "w1", 8), { ...response(1, undefined, [-1, -1, -1, -1]), deferred: [0] });
    expect(u.deferred).toBe(1);
    expect(u.evals).toBe(0);
    expect(a.state.images[0]!.sampler.step).toBe(step);
    expect(a.state.images[0]!.reuseAt).toBeUndefined();
    const built = buildTick(new Map([["w1", callOf(["a"], "w1").items]]), (id) => requests.get(id)!.state, () => undefined, ["w0", "w1"], L * E, () => frame, (w) => (w === "w1" ? ["z/0"] : undefined));
    expect(built.calls[0]!.req.items[0]!.reuse).toEqual({ threshold: 0.2, state: a.state.images[0]!.reuse });
    expect(built.calls[0]!.req.reuseRelease).toEqual(["z/0"]);
    // that tick fails: what it carried to workers still in the pool goes with a later one
    expect(Object.fromEntries(carriedReleases(built.calls, ["w0", "w1"]))).toEqual({ w1: ["z/0"] });
    expect(carriedReleases(built.calls, ["w0"]).size).toBe(0);
  });

  it("puts back a new state's previous evaluation, left off the wire when it is the state the item was sent", () => {
    const a = live("a");
    const requests = new Map([["a", a]]);
    const s1 = state(1);
    update(requests, callOf(["a"]), response(1, [{ item: 0, reused: false, distance: NaN, state: s1 }], [0, 0, 0, 0]));
    const s2 = state(2); // as decoded: no previous
    update(requests, callOf(["a"]), response(1, [{ item: 0, reused: false, distance: 0.4, state: s2, previousIsInput: true }], [0, 0, 0, 0]));
    expect(a.state.images[0]!.reuse).toEqual({ ...s2, previous: { t: s1.t, probe: s1.probe, residual: s1.residual } });
  });

  it("applyReuse is pure", () => {
    const a = live("a");
    const before = a.state;
    const after = applyReuse(before, 0, false, state(1), true);
    expect(before.images[0]!.reuse).toBeUndefined();
    expect(after.images[0]!.reuse).toBeDefined();
    expect(applyReuse(after, 0, false, state(2), false).images[0]!.reuse).toBeUndefined();
  });
});
