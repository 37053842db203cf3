import { describe, expect, it } from "vitest";
import { createMemoryBus } from "@switchyard/bus";
import { type Bus, type Kv, type RequestEvent, type SubmitMessage, type WorkerPool, channels, journalRecord, publish, request, subjects as makeSubjects, subscribe } from "@switchyard/contract";
import { Code } from "@switchyard/errors";
import { rejection } from "@switchyard/errors/testing";
import { BUNDLED_MODEL_DIR, loadManifest } from "@switchyard/manifest";
import { createRequestJournal } from "./journal";
import { createSchedulerService } from "./service";

const manifest = loadManifest(BUNDLED_MODEL_DIR);

/** No workers: whatever is admitted stays held. */
const idlePool: WorkerPool = {
  members: () => [], owners: () => [], planVersion: () => 0,
  runTick: () => Promise.reject(new Error("no workers")), markFailed: async () => undefined, changed: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 20))),
};

const submit = (id: string, steps = 4): SubmitMessage => ({
  requestId: id, model: manifest.name, params: { label: 3, conditional: true, count: 2, steps, sampler: "euler", guidance: 2, shift: 1, seed: 7 }, priority: 0, deadlineMs: null, previewInterval: 0,
});

function setup(bus: Bus = createMemoryBus()) {
  const subjects = makeSubjects(`jr${Math.random().toString(36).slice(2, 8)}`, "g1");
  const journal = createRequestJournal(bus, subjects);
  const scheduler = () => createSchedulerService({ bus, subjects, manifest, pool: idlePool, journal });
  const intake = channels(subjects).intake(manifest.name);
  return { bus, subjects, journal, scheduler, submitOne: (m: SubmitMessage) => request(bus, intake, m) };
}

const until = async (f: () => boolean, ms = 2000) => {
  const t0 = Date.now();
  while (!f()) {
    if (Date.now() - t0 > ms) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe("the request journal (#12: an accepted request survives its scheduler)", () => {
  it("stores a request before the scheduler acknowledges it, under its group, and forgets it once it ends", async () => {
    const { bus, subjects, scheduler, submitOne } = setup();
    const s = scheduler();
    s.start();
    const kv = await bus.kv(subjects.requestsBucket);
    expect(await submitOne(submit("a.b"))).toEqual({ accepted: true, queuePosition: 0 });
    const stored = await kv.get(subjects.journalKey("a.b"));
    expect(journalRecord.parse(stored?.value).submit.requestId).toBe("a.b");
    expect(subjects.journalKey("a.b")).toMatch(/^g1\./);
    expect(await kv.keys(subjects.journalKey("a.b", "*"))).toEqual([subjects.journalKey("a.b")]);
    publish(bus, channels(subjects).cancel, { requestId: "a.b" });
    await until(() => s.stats().queued === 0);
    let gone = false;
    await until(() => (void kv.get(subjects.journalKey("a.b")).then((e) => (gone = e === undefined)), gone));
    await s.stop();
  });

  it("is read by the group's next scheduler, which resumes every request its predecessor held (from step 0)", async () => {
    const { subjects, scheduler, submitOne, bus } = setup();
    const first = scheduler();
    first.start();
    await submitOne(submit("r1"));
    await submitOne(submit("r2"));
    // stopped (as SIGKILL would: nothing told the clients): they stay in the journal
    await first.stop();
    const next = scheduler();
    const events: RequestEvent[] = [];
    subscribe(bus, channels(subjects).events("r2"), (e) => events.push(e));
    next.start();
    await until(() => next.stats().queued === 2);
    // it answers for them: a gateway asking after a silent stream hears where r2 is
    publish(bus, channels(subjects).resend, { requestId: "r2" });
    await until(() => events.length > 0);
    expect(events[0]).toEqual({ type: "status", step: 0, steps: 4 });
    await next.stop();
  });

  it("refuses a request it cannot store with UNAVAILABLE (retryable), and does not hold it", async () => {
    const bus = createMemoryBus();
    const broken: Bus = {
      ...bus, publish: bus.publish.bind(bus), subscribe: bus.subscribe.bind(bus), serve: bus.serve.bind(bus), request: bus.request.bind(bus), flush: bus.flush.bind(bus), close: bus.close.bind(bus),
      kv: async (b) => {
        const kv = await bus.kv(b);
        return { ...kv, get: kv.get.bind(kv), keys: kv.keys.bind(kv), delete: kv.delete.bind(kv), put: () => Promise.reject(new Error("nats: disconnected")) } as Kv;
      },
    };
    const { scheduler, submitOne } = setup(broken);
    const s = scheduler();
    s.start();
    const e = await rejection(submitOne(submit("x")));
    expect(e.code).toBe(Code.Unavailable);
    expect(e.message).toMatch(/could not store the request in the request journal: .*disconnected; retry/);
    expect(s.stats().queued).toBe(0);
    await s.stop();
  });

  it("repeats a finished request's final events when asked (they may have been lost while NATS was away)", async () => {
    const { bus, subjects, scheduler, submitOne } = setup();
    const s = scheduler();
    s.start();
    await submitOne(submit("gone"));
    const events: RequestEvent[] = [];
    subscribe(bus, channels(subjects).events("gone"), (e) => events.push(e));
    publish(bus, channels(subjects).cancel, { requestId: "gone" });
    await until(() => events.length === 1);
    publish(bus, channels(subjects).resend, { requestId: "gone" });
    await until(() => events.length === 2);
    expect(events[1]).toEqual(events[0]);
    expect(events[1]).toMatchObject({ type: "error", code: Code.Canceled });
    await s.stop();
  });
});
