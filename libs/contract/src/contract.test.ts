import { describe, expect, it } from "vitest";
import { Code } from "@switchyard/errors";
import { caught, rejection } from "@switchyard/errors/testing";
import type { Bus, Json } from "./bus";
import { channels, decode, publish, request, serve, subscribe } from "./channels";
import { createExpertsUsed, encodePrediction, expertMaskBytes, expertsUsedBy, markExpertUsed, unpackExperts } from "./codecs";
import { heartbeat, planInForce, submitMessage } from "./messages";
import { contiguousPlan, copiesOf, expertsOf, servingCopy } from "./plan";
import { subjects } from "./subjects";

/** The smallest bus that delivers synchronously, as a wire would: JSON in, JSON out. */
function loopBus(): Bus {
  const subs: { subject: string; h: (p: Json, s: string) => void }[] = [];
  const servers = new Map<string, (p: Json, h: Readonly<Record<string, string>>) => Promise<Json>>();
  const wire = (p: Json): Json => JSON.parse(JSON.stringify(p)) as Json;
  return {
    publish: (subject, p) => subs.filter((s) => s.subject === subject).forEach((s) => s.h(wire(p), subject)),
    subscribe: (subject, h) => {
      const s = { subject, h };
      subs.push(s);
      return { unsubscribe: () => void subs.splice(subs.indexOf(s), 1) };
    },
    serve: (subject, h) => {
      servers.set(subject, h);
      return { unsubscribe: () => void servers.delete(subject) };
    },
    request: async (subject, p, o) => wire(await servers.get(subject)!(wire(p), o?.headers ?? {})),
    kv: () => Promise.reject(new Error("no kv")),
    flush: async () => undefined,
    close: async () => undefined,
  };
}

const s = subjects("t", "g1");
const ch = channels(s);

describe("bus messages are parsed once, at the receiver, by the schema of their subject", () => {
  it("a subscription gets typed messages and hears of the ones that do not fit, by field", () => {
    const bus = loopBus();
    const got: string[] = [];
    const bad: string[] = [];
    subscribe(bus, ch.heartbeat, (hb) => got.push(`${hb.workerId}@${hb.address}`), (e) => bad.push(`${e.code}: ${e.message}`));
    publish(bus, ch.heartbeat, { workerId: "w1", address: "h:1" });
    bus.publish(s.heartbeat, { workerId: 7, address: "h:2" });
    bus.publish(s.heartbeat, { address: "h:3" });
    bus.publish(s.heartbeat, "hello");
    expect(got).toEqual(["w1@h:1"]);
    expect(bad).toHaveLength(3);
    expect(bad[0]).toMatch(/^3: .*workerId 7 must be string/);
    expect(bad[1]).toMatch(/workerId is required/);
  });

  it("a handler that throws is reported, and the subscription keeps delivering", () => {
    const bus = loopBus();
    const bad: string[] = [];
    let n = 0;
    subscribe(bus, ch.leave, () => {
      if (++n === 1) throw new Error("boom");
    }, (e) => bad.push(e.message));
    publish(bus, ch.leave, { workerId: "a" });
    publish(bus, ch.leave, { workerId: "b" });
    expect(n).toBe(2);
    expect(bad).toEqual([expect.stringContaining("boom")]);
  });

  it("a request that does not fit gets INVALID_ARGUMENT naming the field; replies are parsed too", async () => {
    const bus = loopBus();
    serve(bus, ch.drain, async (d) => ({ workerId: d.workerId, planVersion: 3, waitedMs: 1 }));
    expect(await request(bus, ch.drain, { workerId: "w1" })).toEqual({ workerId: "w1", planVersion: 3, waitedMs: 1 });
    const e = await rejection(bus.request(s.drain, { workerId: "" }));
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.message).toMatch(/workerId "" must be >= 1 in length/);
    serve(bus, ch.intake("m"), async () => ({ accepted: true, queuePosition: 0 }));
    bus.serve(s.intake("broken"), async () => ({ accepted: "yes" }));
    const r = await rejection(request(bus, ch.intake("broken"), submitMessage.parse(validSubmit())));
    expect(r.code).toBe(Code.Internal);
    expect(r.message).toMatch(/accepted/);
  });

  it("submits carry resolved parameters, bounded strings and ints", () => {
    expect(decode(submitMessage, validSubmit(), "submit").params.label).toBe(3);
    const e = caught(() => decode(submitMessage, { ...validSubmit(), requestId: "x".repeat(129) }, "submit"));
    expect(e.message).toMatch(/requestId .* must be <= 128 in length/);
    expect(caught(() => decode(submitMessage, { ...validSubmit(), params: { ...validSubmit().params, count: 1e9 } }, "submit")).message).toMatch(/params.count 1000000000 must be <= 256/);
    expect(caught(() => decode(submitMessage, { ...validSubmit(), priority: 0.5 }, "submit")).message).toMatch(/priority 0.5/);
  });

  it("the plan in force and heartbeats have one schema each", () => {
    expect(planInForce.safeParse({ version: 1, layers: 1, experts: 2, owners: ["a", "b"], workers: ["a", "b"], appliedAt: "now", trafficAtApply: {} }).success).toBe(true);
    expect(planInForce.safeParse({ version: 1, owners: ["a"] }).success).toBe(false);
    expect(heartbeat.parse({ workerId: "w", address: "h:1", extra: 1 })).toEqual({ workerId: "w", address: "h:1" });
  });
});

describe("the one plan type and dispatch rule", () => {
  it("a home holding a copy serves itself; others spread rows over the copies", () => {
    const plan = { version: 1, layers: 1, experts: 2, owners: ["a", "b"], replicas: [["c"], []] };
    expect(copiesOf(plan, 0)).toEqual(["a", "c"]);
    expect(copiesOf(plan, 1)).toEqual(["b"]);
    expect(servingCopy(copiesOf(plan, 0), "c", 0)).toBe("c");
    expect([0, 1, 2, 3].map((row) => servingCopy(copiesOf(plan, 0), "b", row))).toEqual(["a", "c", "a", "c"]);
    expect(servingCopy([1, 2], 0, 3)).toBe(2); // indices, as the solvers name workers
    expect(expertsOf(plan, "c")).toEqual([0]);
    expect(contiguousPlan(["b", "a"], 2, 4).owners).toEqual(["a", "a", "b", "b", "a", "a", "b", "b"]);
  });
});

describe("tick codecs: one layout on both sides", () => {
  it("unpacks expert bitmasks", () => {
    expect([...unpackExperts(Uint8Array.from([0b101, 0b10000000]), 16)]).toEqual([0, 2, 15]);
  });

  it("counts, per expert, the items predicted to use it", () => {
    expect(encodePrediction([undefined, undefined], 4)).toBeUndefined();
    expect([...encodePrediction([new Set([0, 3]), undefined, new Set([3])], 4)!]).toEqual([1, 0, 0, 2]);
  });

  it("experts-used masks round-trip per image; a short mask reads as none", () => {
    const n = 13;
    const mask = createExpertsUsed(3, n);
    expect(mask.length).toBe(3 * expertMaskBytes(n));
    markExpertUsed(mask, n, 1, 12);
    markExpertUsed(mask, n, 1, 0);
    markExpertUsed(mask, n, 2, 7);
    expect([...expertsUsedBy(mask, n, 0)!]).toEqual([]);
    expect([...expertsUsedBy(mask, n, 1)!].sort((a, b) => a - b)).toEqual([0, 12]);
    expect([...expertsUsedBy(mask, n, 2)!]).toEqual([7]);
    expect(expertsUsedBy(mask, n, 3)).toBeUndefined();
    expect(expertsUsedBy(undefined, n, 0)).toBeUndefined();
  });

  it("the prediction counts images per expert, and is absent without any prediction", () => {
    expect(Array.from(encodePrediction([new Set([0, 2]), undefined, new Set([2, 9])], 4)!)).toEqual([1, 0, 2, 0]);
    expect(encodePrediction([undefined], 4)).toBeUndefined();
  });
});

function validSubmit() {
  return {
    requestId: "r1", model: "m", params: { label: 3, conditional: true, count: 1, steps: 2, sampler: "euler", guidance: 2, shift: 1, seed: 1 },
    priority: 0, deadlineMs: null, previewInterval: 0,
  };
}
