import { describe, expect, it } from "vitest";
import { reuseKey } from "@switchyard/proto";
import { KeptReuseStates } from "./kept-reuse-states";

/** A state of 2 floats per tensor (16 B; 32 B with a previous evaluation). */
const state = (fill: number, previous = false) => ({
  rows: 1, t: 0.5, probe: new Float32Array(2).fill(fill), residual: new Float32Array(2).fill(-fill),
  ...(previous ? { previous: { t: 0.7, probe: new Float32Array(2).fill(fill + 1), residual: new Float32Array(2).fill(-fill - 1) } } : {}),
});

describe("the residual-reuse states a worker keeps", () => {
  it("gives back the state made for a key in that tick only (a later tick's replaces it)", () => {
    const kept = new KeptReuseStates(1024);
    const s = state(1);
    kept.put(reuseKey("r", 0), 5, s);
    expect(kept.get("r/0", 5)!.probe).toBe(s.probe); // tensors of their own are not copied
    expect(kept.get("r/0", 4)).toBeUndefined();
    expect(kept.get("r/1", 5)).toBeUndefined();
    kept.put("r/0", 6, state(2, true));
    expect(kept.get("r/0", 5)).toBeUndefined();
    expect(kept.get("r/0", 6)!.probe[0]).toBe(2);
    expect(kept.stats()).toEqual({ states: 1, bytes: 32 });
  });

  it("stays within its bytes, the least recently used going first, and frees what it is told", () => {
    const kept = new KeptReuseStates(48); // three plain states
    for (const k of ["a", "b", "c"]) kept.put(k, 1, state(1));
    kept.get("a", 1); // a is now the most recently used
    kept.put("d", 1, state(1));
    expect(["a", "b", "c", "d"].filter((k) => kept.get(k, 1))).toEqual(["a", "c", "d"]);
    kept.put("e", 2, state(1, true)); // 32 B: two go
    expect(kept.stats()).toEqual({ states: 2, bytes: 48 });
    kept.release(["e", "nobody"]);
    expect(kept.stats()).toEqual({ states: 1, bytes: 16 });
    kept.put("big", 1, { ...state(1), probe: new Float32Array(100) }); // over the whole bound: not kept, nothing evicted
    expect(kept.stats().states).toBe(1);
    const none = new KeptReuseStates(0);
    none.put("a", 1, state(1));
    expect(none.get("a", 1)).toBeUndefined();
  });

  it("copies tensors that are views into a larger buffer (a decoded message), so they do not keep it alive", () => {
    const message = new Float32Array(64);
    const view = { rows: 1, t: 0.5, probe: message.subarray(8, 10), residual: new Float32Array(2), previous: { t: 0.7, probe: message.subarray(10, 12), residual: new Float32Array(2) } };
    message[8] = 3;
    const kept = new KeptReuseStates(1024);
    kept.put("a", 1, view);
    const s = kept.get("a", 1)!;
    expect(s.probe.buffer).not.toBe(message.buffer);
    expect(s.previous!.probe.buffer).not.toBe(message.buffer);
    expect(s.probe[0]).toBe(3);
    expect(s.residual).toBe(view.residual);
  });
});
