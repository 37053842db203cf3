import { describe, expect, it } from "vitest";
import { createMemoryBus } from "@switchyard/bus";
import { type Bus, type ProgressEvent, type SubmitMessage, channels, publish, serve, subjects as makeSubjects, subscribe } from "@switchyard/contract";
import { Code, type SwitchyardError } from "@switchyard/errors";
import { startRequest } from "./request-stream";

const submit: SubmitMessage = {
  requestId: "req-1", model: "m", params: { label: 1, conditional: true, count: 1, steps: 3, sampler: "euler", guidance: 1, shift: 1, seed: 1 }, priority: 0, deadlineMs: null, previewInterval: 0,
};

function follow(bus: Bus, s: ReturnType<typeof makeSubjects>, watch: { submitRetryMs?: number; silenceMs?: number }) {
  const progress: number[] = [];
  const outcome = new Promise<{ ok: true } | { ok: false; error: SwitchyardError }>((resolve) =>
    startRequest(bus, s, "m", submit, 200, { progress: (e: ProgressEvent) => progress.push(e.step), done: () => resolve({ ok: true }), error: (error) => resolve({ ok: false, error }) }, watch),
  );
  return { progress, outcome };
}

describe("a request's stream at the gateway (#12 defect 2: accepted requests hung or vanished)", () => {
  it("retries a submit nobody answers until a scheduler comes up (one restarting)", async () => {
    const bus = createMemoryBus();
    const s = makeSubjects("rs1");
    const f = follow(bus, s, { submitRetryMs: 5000 });
    await new Promise((r) => setTimeout(r, 600)); // no scheduler yet: "no responders", retried
    serve(bus, channels(s).intake("m"), async (m) => {
      setTimeout(() => publish(bus, channels(s).events(m.requestId), { type: "done", queueMs: 0, computeMs: 0, totalMs: 0, evals: 3, seed: 1 }), 10);
      return { accepted: true, queuePosition: 0 };
    });
    expect(await f.outcome).toEqual({ ok: true });
  });

  it("gives up on a submit after its retry budget with UNAVAILABLE", async () => {
    const f = follow(createMemoryBus(), makeSubjects("rs2"), { submitRetryMs: 300 });
    const r = await f.outcome;
    expect(r.ok).toBe(false);
    if (!r.ok) expect([r.error.code, r.error.message]).toEqual([Code.Unavailable, expect.stringMatching(/no scheduler accepted the request: no responders/)]);
  });

  it("fails a silent request that no scheduler holds and the journal does not have, with UNAVAILABLE (before: it hung)", async () => {
    const bus = createMemoryBus();
    const s = makeSubjects("rs3");
    const resends: string[] = [];
    subscribe(bus, channels(s).resend, (m) => resends.push(m.requestId));
    serve(bus, channels(s).intake("m"), async () => ({ accepted: true, queuePosition: 0 })); // accepts, then "dies"
    const r = await follow(bus, s, { silenceMs: 100 }).outcome;
    expect(r.ok).toBe(false);
    if (!r.ok) expect([r.error.code, r.error.message]).toEqual([Code.Unavailable, "[unavailable] request req-1 was lost: no scheduler holds it and the request journal does not have it; retry it"]);
    expect(resends.length).toBeGreaterThan(0);
  });

  it("keeps waiting for a silent request the journal holds, and passes on progress only past the furthest step (a resumed request starts again at 0)", async () => {
    const bus = createMemoryBus();
    const s = makeSubjects("rs4", "g2");
    const ev = (e: Parameters<typeof publish<unknown>>[2]) => publish(bus, channels(s).events("req-1"), e as never);
    serve(bus, channels(s).intake("m"), async (m) => {
      await (await bus.kv(s.requestsBucket)).put(s.journalKey(m.requestId), { stored: true });
      setTimeout(() => [1, 2].forEach((step) => ev({ type: "progress", step, steps: 3, t: 0.5 })), 10);
      return { accepted: true, queuePosition: 0 };
    });
    const f = follow(bus, s, { silenceMs: 100 });
    // the scheduler is gone for 5 × the silence budget, then its successor resumes from step 0
    setTimeout(() => {
      for (const step of [1, 2, 3]) ev({ type: "progress", step, steps: 3, t: 0.5 });
      ev({ type: "done", queueMs: 0, computeMs: 0, totalMs: 0, evals: 3, seed: 1 });
    }, 500);
    expect(await f.outcome).toEqual({ ok: true });
    expect(f.progress).toEqual([1, 2, 3]);
  });
});
