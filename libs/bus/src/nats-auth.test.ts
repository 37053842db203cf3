import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@switchyard/errors";
import { rejection } from "@switchyard/errors/testing";
import { type Bus, subjects as makeSubjects } from "@switchyard/contract";
import { type NatsRole, generateNatsUsers, natsAuthorizationConfig, rolePermissions } from "./nats-auth";
import { createNatsBus } from "./nats-bus";
import { subjectMatches } from "./bus";
import { type NatsServer, natsServerAvailable, startNatsServer } from "./testing/index";

describe("NATS roles' permissions", () => {
  it("keep each role to its own subjects", () => {
    const can = (role: NatsRole, subject: string) => rolePermissions(role, "sy").publish.some((p) => subjectMatches(p, subject));
    expect(can("gateway", "sy.workers.default.heartbeat")).toBe(false);
    expect(can("worker", "sy.events.r1")).toBe(false);
    expect(can("worker", "sy.intake.m")).toBe(false);
    expect(can("gateway", "$KV.sy-requests.default.r1")).toBe(false);
    expect(can("scheduler", "$KV.sy-requests.default.r1")).toBe(true);
    expect(can("worker", "sy.workers.default.heartbeat")).toBe(true);
    expect(can("operator", "anything.at.all")).toBe(true);
    const conf = natsAuthorizationConfig(generateNatsUsers(), "sy");
    expect(conf).toMatch(/^authorization \{\n {2}users: \[/);
    expect(conf.match(/user: "switchyard-/g)).toHaveLength(4);
  });
});

describe.skipIf(!natsServerAvailable())("a nats-server with the generated users (#12 defect 4: any local process could do anything)", () => {
  const users = generateNatsUsers();
  const s = makeSubjects("sy");
  let server: NatsServer;
  const buses: Bus[] = [];
  const as = async (role: NatsRole) => {
    const b = await createNatsBus({ servers: server.url, name: `auth-${role}`, user: users[role].user, password: users[role].password });
    buses.push(b);
    return b;
  };
  /** What `listener` hears on `subject` after `sender` publishes there. */
  const heard = async (sender: Bus, listener: Bus, subject: string) => {
    const got: unknown[] = [];
    const sub = listener.subscribe(subject, (m) => got.push(m));
    await listener.flush();
    sender.publish(subject, { forged: true });
    await sender.flush().catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));
    sub.unsubscribe();
    return got.length;
  };
  beforeAll(async () => {
    server = await startNatsServer({ config: natsAuthorizationConfig(users, "sy") });
  });
  afterAll(async () => {
    for (const b of buses) await b.close();
    await server?.stop();
  });

  it("refuses a client without credentials, or with a wrong password, as UNAUTHENTICATED", async () => {
    const e = await rejection(createNatsBus({ servers: server.url, name: "anonymous" }));
    expect(e.code).toBe(Code.Unauthenticated);
    expect(e.message).toMatch(/connect to NATS at .*: .*authorization/i);
    expect((await rejection(createNatsBus({ servers: server.url, user: users.gateway.user, password: "guess" }))).code).toBe(Code.Unauthenticated);
  });

  it("lets each role do its work and nothing past it", async () => {
    const [gateway, scheduler, worker, operator] = [await as("gateway"), await as("scheduler"), await as("worker"), await as("operator")];
    // the work: a worker's heartbeat reaches gateways and schedulers; a scheduler's events reach gateways
    expect(await heard(worker, scheduler, s.heartbeat)).toBe(1);
    expect(await heard(scheduler, gateway, s.events("r1"))).toBe(1);
    // forging: a gateway's heartbeat, a worker's done event, a worker's cancel go nowhere
    expect(await heard(gateway, operator, s.heartbeat)).toBe(0);
    expect(await heard(worker, operator, s.events("r1"))).toBe(0);
    expect(await heard(worker, operator, s.cancel)).toBe(0);
    // intake: served by a scheduler, asked by a gateway; a worker may not submit
    scheduler.serve(s.intake("m"), async () => ({ accepted: true, queuePosition: 0 }), { queue: "schedulers" });
    await scheduler.flush();
    expect(await gateway.request(s.intake("m"), { x: 1 })).toEqual({ accepted: true, queuePosition: 0 });
    const refused = await rejection(worker.request(s.intake("m"), { x: 1 }, { timeoutMs: 500 }));
    expect([refused.code, refused.message]).toEqual([Code.PermissionDenied, expect.stringMatching(/permissions violation/i)]);
    // the journal: a scheduler writes it, a gateway reads it, nobody else writes
    const kvS = await scheduler.kv(s.requestsBucket);
    await kvS.put(s.journalKey("r1"), { stored: true });
    const kvG = await gateway.kv(s.requestsBucket);
    expect(await kvG.keys(s.journalKey("r1", "*"))).toEqual([s.journalKey("r1")]);
    expect((await rejection(kvG.put(s.journalKey("r2"), { forged: true }))).code).toBe(Code.PermissionDenied);
    // the plans: a scheduler writes the plan in force, a worker watches it and may not write it
    const kvPlans = await scheduler.kv(s.plansBucket);
    await kvPlans.put(s.planInForceKey("m"), { v: 1 });
    const seen: unknown[] = [];
    const kvW = await worker.kv(s.plansBucket);
    const w = await kvW.watch(s.planInForceKey("m"), (e) => seen.push(e.value));
    for (let i = 0; i < 50 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    w.unsubscribe();
    expect(seen).toEqual([{ v: 1 }]);
    expect((await rejection(kvW.put(s.planInForceKey("m"), { v: 666 }))).code).toBe(Code.PermissionDenied);
  });
});
