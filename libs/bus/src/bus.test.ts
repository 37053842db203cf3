import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, SwitchyardError } from "@switchyard/errors";
import { type Bus, groupOf, subjects } from "@switchyard/contract";
import { createMemoryBus } from "./memory-bus";
import { createNatsBus } from "./nats-bus";
import { subjectMatches } from "./bus";
import { type NatsServer, natsServerAvailable, startNatsServer } from "./testing/index";
import { caught, rejection } from "@switchyard/errors/testing";

describe.skipIf(!natsServerAvailable())("NATS going away", () => {
  it("surfaces as UNAVAILABLE, not UNKNOWN (#12 defect 7), so that clients retry", async () => {
    const server = await startNatsServer();
    const bus = await createNatsBus({ servers: server.url, name: "down-test" });
    try {
      await server.stop();
      await new Promise((r) => setTimeout(r, 300));
      const e = await rejection(bus.flush());
      expect(e.code).toBe(Code.Unavailable);
      expect(e.message).toContain("flush to NATS");
    } finally {
      await bus.close();
    }
  });
});

describe("memory bus payload limit", () => {
  it("refuses what NATS would refuse: a message over 1 MiB", async () => {
    const bus = createMemoryBus();
    const e = (() => {
      try {
        bus.publish("x.y", { data: "a".repeat(1024 * 1024) });
      } catch (err) {
        return SwitchyardError.from(err);
      }
      return undefined;
    })();
    expect(e?.code).toBe(Code.ResourceExhausted);
    expect(e?.message).toContain("exceeds the bus payload limit of 1048576 bytes");
    expect(() => bus.publish("x.y", { data: "a".repeat(1000 * 1024) })).not.toThrow();
    await bus.close();
  });
});

describe("subjects", () => {
  it("match NATS wildcards", () => {
    expect(subjectMatches("a.*.c", "a.b.c")).toBe(true);
    expect(subjectMatches("a.>", "a.b.c")).toBe(true);
    expect(subjectMatches("a.>", "a")).toBe(false);
    expect(subjectMatches("a.*", "a.b.c")).toBe(false);
  });

  it("give every request id its own events subject (ids that differ share no subject)", () => {
    const s = subjects("t");
    const ids = ["a.b", "a_b", "a b", "a*b", "a>b", "a=b", "=YS5i", "a.b.", "", "é", "r.1*"];
    const subs = ids.map((id) => s.events(id));
    expect(new Set(subs).size).toBe(ids.length);
    for (const sub of subs) expect(sub.split(".")).toHaveLength(3); // one token, no wildcards
    for (const sub of subs) expect(sub).not.toMatch(/[*>\s]/);
    expect(s.events("0b8f-uuid_like")).toBe("t.events.0b8f-uuid_like");
    expect(s.planKey("dit-moe-fmnist")).toBe("plan.default.dit-moe-fmnist");
    expect(() => subjects("a.b")).toThrow(/subjectPrefix "a.b" must be letters, digits/);
  });

  it("keep a serving group's membership, plans and figures apart from other groups'", () => {
    const a = subjects("t", "a");
    const b = subjects("t", "b");
    expect(a.intake("m")).toBe(b.intake("m")); // one intake: gateways spread work over groups
    expect(a.heartbeat).not.toBe(b.heartbeat);
    expect(a.leave).not.toBe(b.leave);
    expect(a.planKey("m")).not.toBe(b.planKey("m"));
    expect(a.schedulerMetrics).not.toBe(b.schedulerMetrics);
    for (const s of [a, b]) {
      expect(subjectMatches(s.anyHeartbeat, s.heartbeat)).toBe(true);
      expect(subjectMatches(s.anyLeave, s.leave)).toBe(true);
      expect(subjectMatches(s.anySchedulerMetrics, s.schedulerMetrics)).toBe(true);
      expect(groupOf(s.heartbeat)).toBe(s.group);
      expect(groupOf(s.leave)).toBe(s.group);
      expect(groupOf(s.schedulerMetrics)).toBe(s.group);
    }
    expect(subjects("t").group).toBe("default");
    expect(caught(() => subjects("t", "Bad.Group")).rawMessage).toMatch(/^group "Bad.Group" must be 1-32 lower-case letters/);
    expect(caught(() => subjects("t", "Bad.Group")).field).toBe("group");
  });
});


/** The same contract, run against the in-memory bus and a real nats-server. */
function contract(name: string, make: () => Promise<Bus>, skip = false) {
  describe.skipIf(skip)(`${name} bus`, () => {
    let bus: Bus;
    let other: Bus;
    beforeAll(async () => {
      bus = await make();
      other = name === "memory" ? bus : await make();
    });
    afterAll(async () => {
      await bus?.close();
      if (other !== bus) await other?.close();
    });

    it("publishes to wildcard subscribers", async () => {
      const got: unknown[] = [];
      const sub = other.subscribe("c1.events.*", (p, s) => got.push([s, p]));
      await other.flush();
      bus.publish("c1.events.r1", { step: 1 });
      bus.publish("c1.other", { no: true });
      await bus.flush();
      await new Promise((r) => setTimeout(r, 50));
      sub.unsubscribe();
      expect(got).toEqual([["c1.events.r1", { step: 1 }]]);
    });

    it("carries request headers (W3C traceparent) to the server", async () => {
      const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
      const seen: Record<string, string>[] = [];
      const sub = bus.serve("h1.x", async (p, headers) => {
        seen.push({ ...headers });
        return p;
      });
      await bus.flush();
      expect(await bus.request("h1.x", { a: 1 }, { headers: { traceparent: tp } })).toEqual({ a: 1 });
      await bus.request("h1.x", { a: 2 });
      expect(seen[0]!.traceparent).toBe(tp);
      expect(seen[1]!.traceparent).toBeUndefined();
      sub.unsubscribe();
    });

    it("serves requests across a queue group, one member each", async () => {
      const hits = [0, 0];
      const s1 = other.serve("c2.intake", async (p) => (hits[0]!++, { echo: p }), { queue: "q" });
      const s2 = other.serve("c2.intake", async (p) => (hits[1]!++, { echo: p }), { queue: "q" });
      await other.flush();
      for (let i = 0; i < 10; i++) expect(await bus.request("c2.intake", i)).toEqual({ echo: i });
      expect(hits[0]! + hits[1]!).toBe(10);
      s1.unsubscribe();
      s2.unsubscribe();
    });

    it("carries handler errors with their code and reports missing responders", async () => {
      const s = other.serve("c3.x", async () => {
        throw new SwitchyardError("queue is full", Code.ResourceExhausted);
      });
      await other.flush();
      const e = await rejection(bus.request("c3.x", {}));
      expect(e.code).toBe(Code.ResourceExhausted);
      expect(e.message).toContain("queue is full");
      s.unsubscribe();
      expect((await rejection(bus.request("c3.nobody", {}, { timeoutMs: 500 }))).code).toBe(Code.Unavailable);
    });

    it("keeps versioned KV entries with compare-and-set and watch", async () => {
      const kv = await bus.kv(`plans-${Math.random().toString(36).slice(2, 8)}`);
      const seen: number[] = [];
      const w = await kv.watch("plan.m", (e) => seen.push((e.value as { v: number }).v));
      const r1 = await kv.create("plan.m", { v: 1 });
      expect((await rejection(kv.create("plan.m", { v: 9 }))).code).toBe(Code.AlreadyExists);
      const r2 = await kv.update("plan.m", { v: 2 }, r1);
      expect((await rejection(kv.update("plan.m", { v: 3 }, r1))).code).toBe(Code.Aborted);
      expect((await kv.get("plan.m"))?.revision).toBe(r2);
      expect((await kv.history("plan.m")).map((e) => (e.value as { v: number }).v)).toEqual([1, 2]);
      await new Promise((r) => setTimeout(r, 100));
      w.unsubscribe();
      expect(seen).toEqual([1, 2]);
      expect(await kv.get("nope")).toBeUndefined();
    });

    it("lists keys by wildcard and deletes them with their history (the request journal's use)", async () => {
      const kv = await bus.kv(`requests-${Math.random().toString(36).slice(2, 8)}`, { maxAgeMs: 60_000 });
      await kv.put("g0.a", 1);
      await kv.put("g0.b", 2);
      await kv.put("g1.a", 3);
      expect((await kv.keys("g0.*")).sort()).toEqual(["g0.a", "g0.b"]);
      await kv.delete("g0.a");
      await kv.delete("g0.never");
      expect(await kv.get("g0.a")).toBeUndefined();
      expect(await kv.history("g0.a")).toEqual([]);
      expect(await kv.keys("g0.*")).toEqual(["g0.b"]);
      expect((await kv.keys(">")).sort()).toEqual(["g0.b", "g1.a"]);
    });
  });
}

contract("memory", async () => createMemoryBus());

const haveNats = natsServerAvailable();
let server: NatsServer | undefined;
beforeAll(async () => {
  if (haveNats) server = await startNatsServer();
});
afterAll(async () => server?.stop());
contract("nats", async () => createNatsBus({ servers: server!.url, name: "bus-test" }), !haveNats);
