import { afterAll, describe, expect, it } from "vitest";
import { type SwitchyardClient, createClient } from "@switchyard/client";
import { natsServerAvailable } from "@switchyard/bus/testing";
import { SwitchyardError } from "@switchyard/errors";
import { BUNDLED_MODEL_DIR } from "@switchyard/model";
import { type ProcessCluster, startProcessCluster } from "./processes";

/**
 * What Kubernetes does to Switchyard's pods, done to processes: serving groups sharing
 * the gateways (#13), and a rolling restart under load (SIGTERM each worker in turn,
 * then the gateway) that must fail no request.
 */
const haveNats = natsServerAvailable();
const prefix = () => `t${Math.random().toString(36).slice(2, 8)}`;
const PARAMS = { label: 3, count: 2, steps: 6, seed: 1 } as const;

async function metrics(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

function counter(text: string, name: string, labels: string): number {
  const m = new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

describe.skipIf(!haveNats)("serving groups", () => {
  let c: ProcessCluster | undefined;
  afterAll(async () => c?.stop());

  it("two groups, each a scheduler and its own worker, share one gateway and both take work", async () => {
    c = await startProcessCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 1, groups: 2, subjectPrefix: prefix(), env: { SWITCHYARD_DENSE_THREADS: "1" } });
    expect(c.groups.map((g) => [g.name, g.workers.map((w) => w.name)])).toEqual([["g0", ["g0-worker-0"]], ["g1", ["g1-worker-0"]]]);
    const client = createClient({ address: c.address });
    try {
      const results = await Promise.all(Array.from({ length: 12 }, (_, i) => client.generateImages({ ...PARAMS, seed: i })));
      expect(results.every((r) => r.images.length === 2)).toBe(true);
      // Each group's scheduler reports its own figures; the intake queue group spread the requests.
      let text = "";
      for (let i = 0; i < 30; i++) {
        text = await metrics(c.metricsPort);
        if (counter(text, "switchyard_scheduler_steps_total", 'group="g0"') > 0 && counter(text, "switchyard_scheduler_steps_total", 'group="g1"') > 0) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      const steps = ["g0", "g1"].map((g) => counter(text, "switchyard_scheduler_steps_total", `group="${g}"`));
      console.log(`serving groups: steps per group ${steps.join(" / ")} over 12 requests`);
      expect(steps[0]).toBeGreaterThan(0);
      expect(steps[1]).toBeGreaterThan(0);
      // Each scheduler drives only its own group: one worker in each plan.
      expect(counter(text, "switchyard_scheduler_workers", 'group="g0"')).toBe(1);
      expect(counter(text, "switchyard_scheduler_workers", 'group="g1"')).toBe(1);
      expect(text).toMatch(/switchyard_worker_ticks_total\{worker="g0-worker-0",group="g0"\} [1-9]/);
      // Readiness over plain HTTP too (probes when the gRPC port is TLS).
      expect((await fetch(`http://127.0.0.1:${c.metricsPort}/readyz`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${c.metricsPort}/livez`)).status).toBe(200);
      expect(text).toMatch(/switchyard_worker_ticks_total\{worker="g1-worker-0",group="g1"\} [1-9]/);
      // The same request gives the same images whichever group serves it.
      const again = await Promise.all(Array.from({ length: 4 }, () => client.generateImages({ ...PARAMS, seed: 7 })));
      for (const r of again) expect(Buffer.from(r.images[0]!.data.buffer).equals(Buffer.from(again[0]!.images[0]!.data.buffer))).toBe(true);
    } finally {
      client.close();
    }
  }, 180_000);
});

describe.skipIf(!haveNats)("rolling restart under load", () => {
  let c: ProcessCluster | undefined;
  afterAll(async () => c?.stop());

  it("SIGTERM each worker in turn, then the gateway: every request succeeds, no tick fails", async () => {
    c = await startProcessCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 2, subjectPrefix: prefix(), env: { SWITCHYARD_DENSE_THREADS: "1" } });
    const cluster = c;
    // Two gateways behind a "Service": the load goes to the ready ones. Kubernetes takes a
    // terminating pod out of the endpoints while its preStop hook runs, then sends SIGTERM.
    const second = await cluster.addGateway();
    const endpoints = new Map<string, SwitchyardClient>([
      [cluster.address, createClient({ address: cluster.address, maxAttempts: 1 })],
      [second.address, createClient({ address: second.address, maxAttempts: 1 })],
    ]);
    const all: SwitchyardClient[] = [...endpoints.values()];
    const latencies: number[] = [];
    const failures: string[] = [];
    let next = 0;
    let running = true;
    const loop = async () => {
      while (running) {
        const targets = [...endpoints.values()];
        const client = targets[next++ % targets.length]!;
        const t0 = performance.now();
        try {
          const r = await client.generateImages({ ...PARAMS, seed: next });
          if (r.images.length !== PARAMS.count) failures.push(`got ${r.images.length} images`);
          latencies.push(performance.now() - t0);
        } catch (e) {
          failures.push(SwitchyardError.from(e).message);
        }
      }
    };
    const loops = Array.from({ length: 4 }, loop);
    const steady = async (ms: number) => new Promise((r) => setTimeout(r, ms));
    try {
      await steady(3000);
      const before = latencies.length;
      const t0 = performance.now();
      const ticksFailedBefore = cluster.scheduler.output().filter((l) => / failed: /.test(l)).length;
      for (const id of ["worker-0", "worker-1"]) {
        const w = cluster.workers.find((p) => p.name === id && p.proc.exitCode === null)!;
        const plansBefore = cluster.scheduler.output().filter((l) => /ready: plan v\d+ over 2 workers/.test(l)).length;
        await w.kill("SIGTERM", 30_000);
        expect(w.proc.exitCode).toBe(0);
        expect(w.output().some((l) => /drained: left the plan in \d+ ms/.test(l))).toBe(true);
        await cluster.addWorker(id);
        // Back in the plan (the same id, as a StatefulSet's pod is) before the next one goes.
        for (let i = 0; i < 300; i++) {
          if (cluster.scheduler.output().filter((l) => /ready: plan v\d+ over 2 workers/.test(l)).length > plansBefore) break;
          await steady(100);
        }
        await steady(1000);
      }
      // The first gateway leaves the endpoints, then gets SIGTERM with streams in flight.
      const gone = endpoints.get(cluster.address)!;
      endpoints.delete(cluster.address);
      await cluster.gateway.kill("SIGTERM", 30_000);
      expect(cluster.gateway.proc.exitCode).toBe(0);
      const replacement = await cluster.addGateway();
      endpoints.set(replacement.address, createClient({ address: replacement.address, maxAttempts: 1 }));
      all.push(endpoints.get(replacement.address)!);
      await steady(2000);
      running = false;
      await Promise.all(loops);
      const during = latencies.slice(before).sort((a, b) => a - b);
      const p = (q: number) => during[Math.min(during.length - 1, Math.floor(q * during.length))]!.toFixed(0);
      const ticksFailed = cluster.scheduler.output().filter((l) => / failed: /.test(l)).length - ticksFailedBefore;
      console.log(
        `rolling restart (2 workers, then the gateway) in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${latencies.length} requests succeeded ` +
          `(${during.length} during the restart), ${failures.length} failed, ${ticksFailed} ticks failed; latency during it p50 ${p(0.5)} ms, p99 ${p(0.99)} ms, max ${p(1)} ms`,
      );
      expect(failures).toEqual([]);
      if (ticksFailed) console.log(cluster.scheduler.output().filter((l) => / failed: |drain|plan v/.test(l)).join("\n"));
      expect(ticksFailed).toBe(0);
      expect(during.length).toBeGreaterThan(8);
      gone.close();
    } finally {
      running = false;
      await Promise.all(loops);
      for (const cl of all) cl.close();
    }
  }, 300_000);
});
