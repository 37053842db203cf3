import { describe, expect, it } from "vitest";
import { MICRO_BATCH_MIN_IMAGES, microBatchesFor } from "./service";
import { type RequestSpec, type RequestState, admit, affinityHome, applyVelocity, isFinished, planTick } from "./policy";

describe("route-aware batching", () => {
  const A = new Set([1, 2, 3, 4]);
  const B = new Set([10, 11, 12, 13]);
  it("groups requests whose predicted experts overlap, and never starves one", () => {
    const rs = ["a1", "b1", "a2", "b2"].map((id) => req(id, { guidance: 1 }));
    const pred = (id: string) => (id.startsWith("a") ? A : B);
    const grouping = (waited: number) => ({ predicted: pred, waited: (id: string) => (id === "b1" ? waited : 0), maxWaitTicks: 3 });
    const plan = planTick(rs, ["w0"], { maxTickRows: 2 }, 0, undefined, grouping(0));
    expect(plan.items.map((i) => i.requestId)).toEqual(["a1", "a2"]); // not a1, b1
    expect(plan.bypassed).toEqual(["b1"]); // held back: only it counts towards the wait bound
    const starving = planTick(rs, ["w0"], { maxTickRows: 2 }, 0, undefined, grouping(3));
    expect(starving.items.map((i) => i.requestId)).toEqual(["a1", "b1"]);
    expect(starving.bypassed).toEqual([]);
    // everything fits: plain priority order
    expect(planTick(rs, ["w0"], { maxTickRows: 10 }, 0, undefined, grouping(0)).items.map((i) => i.requestId)).toEqual(["a1", "b1", "a2", "b2"]);
  });
});

let seq = 0;
function req(id: string, over: Partial<RequestSpec> & { count?: number } = {}): RequestState {
  const count = over.count ?? 1;
  const spec: RequestSpec = {
    id,
    params: { sampler: "euler", steps: 2, shift: 1 },
    label: 1,
    guidance: 2,
    priority: 0,
    deadlineMs: undefined,
    noise: Array.from({ length: count }, () => new Float32Array(4)),
    ...over,
  };
  return admit(spec, seq++, 0);
}

describe("planTick", () => {
  it("orders by priority, then deadline, then arrival, within the row budget", () => {
    const a = req("a");
    const b = req("b", { priority: 5 });
    const c = req("c", { deadlineMs: 1000 });
    const d = req("d");
    const plan = planTick([a, b, c, d], ["w0"], { maxTickRows: 6 }, 0);
    expect(plan.items.map((i) => i.requestId)).toEqual(["b", "c", "a"]);
    expect(plan.rows).toBe(6);
  });

  it("counts two rows for guided images and one for unguided", () => {
    const plan = planTick([req("g", { count: 2 }), req("u", { count: 3, guidance: 1 })], ["w0"], { maxTickRows: 100 }, 0);
    expect(plan.rows).toBe(2 * 2 + 3);
  });

  it("counts one row for a guided image whose next evaluation lies outside its guidance interval (#18)", () => {
    // 2 euler steps: evaluations at t = 1, then 0.5
    const outside = req("o", { count: 2, guidanceInterval: { tMin: 0, tMax: 0.6 } });
    const inside = req("i", { count: 2, guidanceInterval: { tMin: 0.9, tMax: 1 } });
    const plan = planTick([outside, inside], ["w0"], { maxTickRows: 100 }, 0);
    expect(plan.items.map((i) => [i.requestId, i.rows])).toEqual([["o", 1], ["o", 1], ["i", 2], ["i", 2]]);
    // the budget follows: 3 rows hold both images outside, only one inside
    expect(planTick([req("o2", { count: 3, guidanceInterval: { tMin: 0, tMax: 0.6 } })], ["w0"], { maxTickRows: 3 }, 0).items).toHaveLength(3);
  });

  it("splits a request that does not fit and lets smaller ones fill the rest", () => {
    const big = req("big", { count: 5, guidance: 1 });
    const small = req("small", { guidance: 1 });
    const plan = planTick([big, small], ["w0"], { maxTickRows: 4 }, 0);
    // (before #12 defect 6's fix: big took all 4 rows and small waited)
    expect(plan.items.filter((i) => i.requestId === "big")).toHaveLength(3);
    expect(plan.items.filter((i) => i.requestId === "small")).toHaveLength(1);
    expect(plan.rows).toBe(4);
    // alone, a request still takes the whole budget
    expect(planTick([big], ["w0"], { maxTickRows: 4 }, 0).rows).toBe(4);
  });

  it("keeps small requests moving behind a huge one (#12 defect 6)", () => {
    // 256 guided images (512 rows) ahead of three one-image requests, a 256-row budget:
    // before, the huge one took every row of every tick until it was done.
    const huge = req("huge", { count: 256 });
    const small = ["s1", "s2", "s3"].map((id) => req(id));
    const plan = planTick([huge, ...small], ["w0", "w1"], { maxTickRows: 256 }, 0);
    for (const s of small) expect(plan.items.filter((i) => i.requestId === s.spec.id)).toHaveLength(1);
    expect(plan.items.filter((i) => i.requestId === "huge")).toHaveLength(125); // the other 250 rows
    expect(plan.rows).toBe(256);
    // a higher priority still comes first: it is served its share before the rest
    const urgent = req("urgent", { count: 200, priority: 5 });
    const p2 = planTick([huge, urgent, ...small], ["w0"], { maxTickRows: 256 }, 0);
    expect(p2.items[0]!.requestId).toBe("urgent");
    for (const s of small) expect(p2.items.some((i) => i.requestId === s.spec.id)).toBe(true);
  });

  it("expires requests past their deadline and skips finished ones", () => {
    const late = req("late", { deadlineMs: 10 });
    let done = req("done", { params: { sampler: "euler", steps: 1, shift: 1 } });
    done = applyVelocity(done, 0, new Float32Array(4)).state;
    expect(isFinished(done)).toBe(true);
    const plan = planTick([late, done, req("ok")], ["w0"], { maxTickRows: 10 }, 50);
    expect(plan.expired).toEqual(["late"]);
    expect(plan.items.map((i) => i.requestId)).toEqual(["ok"]);
  });

  it("balances new requests over workers and keeps a live home", () => {
    const rs = [req("a"), req("b"), req("c"), req("d")];
    const plan = planTick(rs, ["w0", "w1"], { maxTickRows: 100 }, 0);
    const homes = plan.items.map((i) => i.home);
    expect(homes.filter((h) => h === "w0")).toHaveLength(2);
    expect(homes.filter((h) => h === "w1")).toHaveLength(2);
    const kept = { ...rs[0]!, home: "w1" };
    expect(planTick([kept], ["w0", "w1"], { maxTickRows: 100 }, 0).items[0]!.home).toBe("w1");
    // its home died: it is re-homed
    const moved = planTick([kept], ["w0"], { maxTickRows: 100 }, 0);
    expect(moved.items[0]!.home).toBe("w0");
    expect(moved.homes.get("a")).toBe("w0");
  });

  it("runs one request at a time when maxRequestsPerTick is 1", () => {
    const plan = planTick([req("a", { count: 2 }), req("b")], ["w0"], { maxTickRows: 100, maxRequestsPerTick: 1 }, 0);
    expect(plan.items.map((i) => i.requestId)).toEqual(["a", "a"]);
  });

  it("homes by affinity within the balance bound, and falls back without history", () => {
    const rs = ["a", "b", "c", "d"].map((id) => req(id));
    // every request's experts live mostly on w1
    const scores = (id: string) => (id === "d" ? undefined : new Map([["w0", 1], ["w1", 9]]));
    const plan = planTick(rs, ["w0", "w1"], { maxTickRows: 100 }, 0, affinityHome(scores, 0.25));
    const homes = Object.fromEntries(plan.items.map((i) => [i.requestId, i.home]));
    expect(homes.a).toBe("w1");
    // the bound stops w1 from taking everyone: (1.25 × rows so far) / 2 workers
    expect(Object.values(homes).filter((h) => h === "w1").length).toBeLessThan(4);
    expect(homes.d).toBeDefined();
  });

  it("plans nothing without workers", () => {
    expect(planTick([req("a")], [], { maxTickRows: 10 }, 0).items).toHaveLength(0);
  });
});

describe("applyVelocity", () => {
  it("advances one image and reports progress when every image completed the step", () => {
    let r = req("a", { count: 2 });
    const v = new Float32Array(4).fill(1);
    let res = applyVelocity(r, 0, v);
    expect(res.stepCompleted).toBe(false);
    r = res.state;
    res = applyVelocity(r, 1, v);
    expect(res.stepCompleted).toBe(true);
    expect(res.state.step).toBe(1);
    expect(r.images[1]!.sampler.step).toBe(0); // pure
  });
});

describe("micro-batches", () => {
  it("splits homes into two only when every home has enough images and more than one worker takes part", () => {
    const n = MICRO_BATCH_MIN_IMAGES;
    expect(microBatchesFor([n, n + 3], 2)).toBe(2);
    expect(microBatchesFor([n, n - 1], 2)).toBe(1);
    expect(microBatchesFor([4 * n], 1)).toBe(1); // a lone worker has no exchange to hide
    expect(microBatchesFor([], 2)).toBe(1);
  });
});
