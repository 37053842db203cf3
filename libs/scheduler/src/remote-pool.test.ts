import { describe, expect, it } from "vitest";
import { createMemoryBus } from "@switchyard/bus";
import { channels, publish, request, subjects as makeSubjects } from "@switchyard/contract";
import type { WorkerClients } from "@switchyard/data-plane";
import { Code } from "@switchyard/errors";
import { rejection } from "@switchyard/errors/testing";
import { createRemotePool } from "./remote-pool";

/** Workers that take every expert assignment at once (no gRPC). */
const fakeClients = (): WorkerClients =>
  ({ setAddress: () => undefined, remove: () => undefined, setExperts: async (_w: string, ids: readonly number[]) => ({ loaded: ids.length, dropped: 0 }), close: () => undefined }) as unknown as WorkerClients;

async function twoWorkerPool() {
  const bus = createMemoryBus();
  const subjects = makeSubjects(`pool${Math.random().toString(36).slice(2, 8)}`);
  const ch = channels(subjects);
  const pool = createRemotePool({ bus, subjects, model: "m", layers: 2, experts: 4, clients: fakeClients() });
  for (const w of ["w0", "w1"]) publish(bus, ch.heartbeat, { workerId: w, address: `${w}:1`, incarnation: "i1" });
  await bus.flush();
  await pool.prepare();
  expect(pool.members()).toEqual(["w0", "w1"]);
  return { bus, ch, pool };
}

describe("remote pool drains", () => {
  it("answers a drain once a plan without the worker is in force", async () => {
    const { bus, ch, pool } = await twoWorkerPool();
    const drained = request(bus, ch.drain, { workerId: "w1", incarnation: "i1" }, { timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 20));
    await pool.prepare();
    expect(pool.members()).toEqual(["w0"]);
    expect(await drained).toMatchObject({ workerId: "w1", planVersion: pool.planVersion() });
    pool.close();
    await bus.close();
  });

  it("answers drains still waiting when it closes, instead of leaving the workers to their drain timeout", async () => {
    const { bus, ch, pool } = await twoWorkerPool();
    const drained = rejection(request(bus, ch.drain, { workerId: "w1", incarnation: "i1" }, { timeoutMs: 10_000 }));
    await new Promise((r) => setTimeout(r, 20));
    // the scheduler stops before its next tick boundary: no plan without w1 will come
    pool.close();
    // (without the answer this would be the request's own timeout, DEADLINE_EXCEEDED, after 10 s)
    const err = await drained;
    expect(err.code).toBe(Code.Unavailable);
    expect(err.message).toMatch(/the scheduler stopped before a plan without worker w1 came into force/);
    await bus.close();
  });
});
