import { describe, expect, it } from "vitest";
import type { ModelParts } from "@switchyard/model";
import { GATE_PRIORITY, createComputeGate, gatedParts } from "./compute-gate";

const tick = () => new Promise<void>((r) => setImmediate(r));

describe("compute gate", () => {
  it("runs one call at a time and the most urgent waiting call first (ties in arrival order)", async () => {
    const gate = createComputeGate({ turns: 1 });
    const order: string[] = [];
    let inside = 0;
    let maxInside = 0;
    const job = (name: string, prio: number) =>
      gate.run(prio, async () => {
        inside++;
        maxInside = Math.max(maxInside, inside);
        await tick();
        order.push(name);
        inside--;
        return name;
      });
    // All queued before the first starts (the gate turns the loop first).
    const done = [job("dense-a", GATE_PRIORITY.dense), job("shared", GATE_PRIORITY.shared), job("expert-1", GATE_PRIORITY.expert), job("dense-b", GATE_PRIORITY.dense), job("expert-2", GATE_PRIORITY.expert)];
    expect(gate.waiting).toBe(5);
    expect(await Promise.all(done)).toEqual(["dense-a", "shared", "expert-1", "dense-b", "expert-2"]);
    expect(order).toEqual(["expert-1", "expert-2", "shared", "dense-a", "dense-b"]);
    expect(maxInside).toBe(1);
  });

  it("lets pending I/O callbacks run before each call", async () => {
    const gate = createComputeGate({ turns: 1 });
    const seen: string[] = [];
    const a = gate.run(0, async () => void seen.push("call 1"));
    setImmediate(() => seen.push("io"));
    const b = gate.run(0, async () => void seen.push("call 2"));
    await Promise.all([a, b]);
    expect(seen.indexOf("io")).toBeLessThan(seen.indexOf("call 2"));
  });

  it("passes errors through, including synchronous throws, and keeps serving", async () => {
    const gate = createComputeGate();
    const bad = gate.run(0, () => {
      throw new Error("boom");
    });
    const rejected = gate.run(1, async () => Promise.reject(new Error("async boom")));
    const good = gate.run(2, async () => 42);
    await expect(bad).rejects.toThrow("boom");
    await expect(rejected).rejects.toThrow("async boom");
    await expect(good).resolves.toBe(42);
    await expect(gate.run(0, async () => "again")).resolves.toBe("again");
  });

  it("rejects a bad turns option naming it", () => {
    expect(() => createComputeGate({ turns: -1 })).toThrow(/turns must be an integer >= 0/);
  });

  it("keeps the parts' grouped expert call, through the gate at expert priority", async () => {
    const calls: string[] = [];
    const call = (name: string) => async () => {
      calls.push(name);
      return new Float32Array(1);
    };
    const parts = {
      dense: call("dense"),
      runExperts: call("runExperts"),
    } as unknown as ModelParts;
    const gated = gatedParts(parts, createComputeGate({ turns: 1 }));
    expect(gated.runExperts).toBeTypeOf("function");
    const done = [gated.dense(0, new Float32Array(0), new Float32Array(0), 0), gated.runExperts!(0, new Int32Array(1), new Int32Array(2), new Float32Array(0))];
    await Promise.all(done);
    expect(calls).toEqual(["runExperts", "dense"]);
    // Parts without a grouped call keep none (callers then run experts one by one).
    expect(gatedParts({ dense: call("dense") } as unknown as ModelParts, createComputeGate()).runExperts).toBeUndefined();
  });

  it("lets the shared expert bypass the gate while it runs on a thread of its own, and only then", async () => {
    const gate = createComputeGate({ turns: 1 });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const order: string[] = [];
    const parts = {
      dense: async () => {
        await held;
        order.push("dense");
      },
      shared: async (_l: number, _u: Float32Array, rows: number) => void order.push(`shared ${rows}`),
      sharedOffThread: (rows: number) => rows >= 256,
    } as unknown as ModelParts;
    const gated = gatedParts(parts, gate);
    expect(gated.sharedOffThread?.(256)).toBe(true);
    const dense = gated.dense(0, new Float32Array(0), new Float32Array(0), 0);
    await tick();
    await tick(); // the dense call holds the gate
    const small = gated.shared(0, new Float32Array(0), 255); // on this thread: waits for the gate
    await gated.shared(0, new Float32Array(0), 256); // on its thread: does not wait
    expect(order).toEqual(["shared 256"]);
    release();
    await Promise.all([dense, small]);
    expect(order).toEqual(["shared 256", "dense", "shared 255"]);
    // Parts without a thread for it keep the gate for every call (and say nothing of one).
    expect(gatedParts({} as ModelParts, gate).sharedOffThread).toBeUndefined();
  });
});
