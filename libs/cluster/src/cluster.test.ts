import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, type GenerateEvent, type GenerateParams, type SwitchyardClient, createClient } from "@switchyard/client";
import { createEngine, generate } from "@switchyard/engine";
import { resolveGenerateParams } from "@switchyard/manifest";
import { BUNDLED_MODEL_DIR, type ModelParts, createOnnxModel } from "@switchyard/model";
import { maxAbsDiff } from "@switchyard/tensor";
import { createNatsBus } from "@switchyard/bus";
import { type Bus, type Subjects, subjects as makeSubjects, toPlanFile } from "@switchyard/contract";
import { natsServerAvailable } from "@switchyard/bus/testing";
import { addReplicas, contiguousPlacement, solveHeuristic } from "@switchyard/placement";
import { readTrace } from "@switchyard/trace";
import * as http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { clientFor, loadContracts } from "@switchyard/proto";
import { type ProcessCluster, startProcessCluster } from "./processes";
import { startEmbeddedCluster } from "./embedded";
import { rejection as failure } from "@switchyard/errors/testing";

/** What the tests need of either kind of cluster. */
interface TestCluster {
  readonly address: string;
  readonly metricsUrl: string;
  queued(): number | undefined;
  killWorker(id: string): Promise<void>;
  members(): readonly string[] | undefined;
  stop(): Promise<void>;
}

type Kind = "embedded" | "processes";
const haveNats = natsServerAvailable();

async function start(kind: Kind, workers: number, maxQueued = 8): Promise<TestCluster> {
  if (kind === "embedded") {
    const c = await startEmbeddedCluster({ modelDir: BUNDLED_MODEL_DIR, workers, port: 0, metricsPort: 0, limits: { maxQueued } });
    return {
      address: c.address,
      metricsUrl: `http://127.0.0.1:${c.gateway.metricsPort}/metrics`,
      queued: () => c.scheduler.stats().queued,
      killWorker: async (id) => c.pool.kill(id),
      members: () => c.pool.members(),
      stop: () => c.stop(),
    };
  }
  const c = await startProcessCluster({
    modelDir: BUNDLED_MODEL_DIR, workers, subjectPrefix: `t${Math.random().toString(36).slice(2, 8)}`,
    env: { SWITCHYARD_MAX_QUEUED: String(maxQueued), SWITCHYARD_DENSE_THREADS: "1" },
  });
  return {
    address: c.address,
    metricsUrl: `http://127.0.0.1:${c.metricsPort}/metrics`,
    queued: () => undefined,
    killWorker: async (id) => c.workers.find((w) => w.name === id)!.kill("SIGKILL"),
    members: () => undefined,
    stop: () => c.stop(),
  };
}

let reference: ModelParts;
beforeAll(async () => {
  reference = await createOnnxModel({ dir: BUNDLED_MODEL_DIR });
});
afterAll(async () => reference?.close());

/** The in-process engine's images for the same parameters (the oracle). */
async function oracle(p: GenerateParams): Promise<Float32Array[]> {
  const params = resolveGenerateParams({ label: p.label, count: p.count, steps: p.steps, sampler: p.sampler, guidance: p.guidance, seed: p.seed }, reference.manifest);
  return (await generate(createEngine({ parts: reference }), params)).images;
}

async function collect(client: SwitchyardClient, p: GenerateParams, opts: { signal?: AbortSignal; timeoutMs?: number } = {}) {
  const events: GenerateEvent[] = [];
  for await (const e of client.generate(p, opts)) events.push(e);
  return events;
}


const SUITES: [Kind, number, "all" | "equality"][] = [
  ["embedded", 1, "equality"],
  ["embedded", 2, "all"],
  ["processes", 1, "equality"],
  ["processes", 2, "all"],
  ["processes", 4, "equality"],
];

describe.each(SUITES)("%s cluster with %i workers", (kind, workers, which) => {
  const enabled = !(kind === "processes" && !haveNats); // processes need nats-server
  const base = enabled ? it : it.skip;
  // Suites that only check equality with the engine do not register the other cases at all.
  const full = (name: string, fn: () => Promise<void>) => {
    if (which !== "all") return;
    (enabled ? it : it.skip)(name, fn);
  };
  let cluster: TestCluster;
  let client: SwitchyardClient;
  beforeAll(async () => {
    if (kind === "processes" && !haveNats) return;
    cluster = await start(kind, workers);
    client = createClient({ address: cluster.address });
  }, 120_000);
  afterAll(async () => {
    client?.close();
    await cluster?.stop();
  });

  base("streams accepted, progress with previews and a result equal to the engine's", async () => {
    const p: GenerateParams = { label: 3, count: 2, steps: 6, sampler: "euler", guidance: 2, seed: 11, previewInterval: 3 };
    const events = await collect(client, p);
    expect(events[0]!.type).toBe("accepted");
    const progress = events.filter((e) => e.type === "progress");
    expect(progress.map((e) => e.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(progress.filter((e) => e.previews.length === 2).map((e) => e.step)).toEqual([3, 6]);
    const result = events.at(-1)!;
    if (result.type !== "result") throw new Error("no result");
    expect(result.images).toHaveLength(2);
    expect(result.images[0]!.png.subarray(1, 4)).toEqual(new Uint8Array([0x50, 0x4e, 0x47]));
    const want = await oracle(p);
    result.images.forEach((img, i) => expect(maxAbsDiff(img.data, want[i]!)).toBeLessThanOrEqual(1e-5));
  });

  base("batches requests with different steps, samplers, labels and guidance, each equal to the engine", async () => {
    const ps: GenerateParams[] = [
      { label: 0, count: 1, steps: 4, sampler: "euler", guidance: 1, seed: 1 },
      { label: 5, count: 2, steps: 3, sampler: "heun", guidance: 3, seed: 2 },
      { label: 9, count: 1, steps: 5, sampler: "pc", guidance: 2, seed: 3 },
      { count: 1, steps: 2, sampler: "euler", seed: 4 },
    ];
    const results = await Promise.all(ps.map((p) => client.generateImages(p)));
    for (const [i, p] of ps.entries()) {
      const want = await oracle(p);
      results[i]!.images.forEach((img, j) => expect(maxAbsDiff(img.data, want[j]!)).toBeLessThanOrEqual(1e-5));
    }
  });

  full("gives requests whose ids differ only in '.', '_' or ' ' each its own images", async () => {
    // Before, ids were mapped into subject tokens lossily, so these shared one events subject.
    const ps: GenerateParams[] = [
      { requestId: "tenant.a", label: 1, steps: 3, seed: 21 },
      { requestId: "tenant_a", label: 7, steps: 3, seed: 22 },
      { requestId: "tenant a", label: 9, steps: 3, seed: 23 },
    ];
    const results = await Promise.all(ps.map((p) => client.generateImages(p)));
    for (const [i, p] of ps.entries()) {
      expect(results[i]!.requestId).toBe(p.requestId);
      expect(maxAbsDiff(results[i]!.images[0]!.data, (await oracle(p))[0]!)).toBeLessThanOrEqual(1e-5);
    }
  });

  full("rejects bad input with INVALID_ARGUMENT naming the field", async () => {
    const e = await failure(client.generateImages({ label: 3, steps: 5000 }));
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.message).toContain("steps 5000 must be an integer >= 1 and <= 1000");
    expect((await failure(client.generateImages({ label: 42 }))).message).toContain("label 42");
    expect((await failure(client.generateImages({ model: "nope" }))).code).toBe(Code.NotFound);
    // #12 defect 7: a 10,000-character name was echoed whole and came back RESOURCE_EXHAUSTED
    const long = await failure(client.generateImages({ model: "m".repeat(10_000) }));
    expect(long.code).toBe(Code.NotFound);
    expect(long.message.length).toBeLessThan(300);
  });

  full("cancels mid-run", async () => {
    const ac = new AbortController();
    const seen: number[] = [];
    const e = await failure(
      (async () => {
        for await (const ev of client.generate({ label: 1, steps: 200, seed: 5 }, { signal: ac.signal })) {
          if (ev.type === "progress") {
            seen.push(ev.step);
            if (ev.step === 2) ac.abort();
          }
        }
      })(),
    );
    expect(e.code).toBe(Code.Canceled);
    expect(seen.at(-1)).toBeLessThan(200);
    // the scheduler drops it before its next tick
    await new Promise((r) => setTimeout(r, 300));
    expect(cluster.queued() ?? 0).toBe(0);
  });

  full("exposes request, scheduler and per-worker traffic figures on /metrics", async () => {
    await client.generateImages({ label: 1, count: 2, steps: 3, seed: 8 });
    // scheduler figures and heartbeats arrive every second
    let text = "";
    for (let i = 0; i < 25; i++) {
      await new Promise((r) => setTimeout(r, 300));
      text = await (await fetch(cluster.metricsUrl)).text();
      if (/switchyard_scheduler_steps_total\{group="default"\} [1-9]/.test(text) && /switchyard_worker_expert_rows_total\{worker="worker-0",group="default"\} [1-9]/.test(text)) break;
    }
    expect(text).toMatch(/switchyard_request_success_total [1-9]/);
    expect(text).toMatch(/switchyard_scheduler_ticks_total\{group="default"\} [1-9]/);
    expect(text).toMatch(/switchyard_scheduler_steps_total\{group="default"\} [1-9]/);
    // worker processes warm up under every plan (embedded clusters in tests do not)
    expect(text).toMatch(kind === "processes" ? /switchyard_scheduler_warmup_ticks_total\{group="default"\} [1-9]/ : /switchyard_scheduler_warmup_ticks_total\{group="default"\} 0/);
    expect(text).toMatch(/switchyard_worker_expert_rows_total\{worker="worker-0",group="default"\} [1-9]/);
    if (workers > 1) expect(text).toMatch(/switchyard_worker_bytes_sent_total\{worker="worker-\d",group="default"\} [1-9]/);
  });

  full("fails an expired deadline with DEADLINE_EXCEEDED", async () => {
    const e = await failure(client.generateImages({ label: 2, steps: 500, seed: 6 }, { timeoutMs: 300 }));
    expect(e.code).toBe(Code.DeadlineExceeded);
  });
});

describe.each(["embedded", "processes"] as const)("admission and failures (%s)", (kind) => {
  const run = kind === "processes" && !haveNats ? it.skip : it;
  run("answers RESOURCE_EXHAUSTED when the queue is full", async () => {
    const cluster = await start(kind, 1, 1);
    const client = createClient({ address: cluster.address });
    try {
      // the first request is admitted (accepted) before the second arrives
      const it = client.generate({ label: 1, steps: 30, seed: 1 })[Symbol.asyncIterator]();
      expect((await it.next()).value?.type).toBe("accepted");
      const first = (async () => {
        for (let r = await it.next(); !r.done; r = await it.next()) if (r.value.type === "result") return r.value;
        throw new Error("no result");
      })();
      const e = await failure(client.generateImages({ label: 2, steps: 2, seed: 2 }));
      expect(e.code).toBe(Code.ResourceExhausted);
      expect((await first).images).toHaveLength(1); // nothing already accepted is lost
    } finally {
      client.close();
      await cluster.stop();
    }
  });

  run("completes a worker's requests elsewhere when it dies mid-run", async () => {
    const cluster = await start(kind, 2);
    const client = createClient({ address: cluster.address });
    try {
      const ps: GenerateParams[] = [
        { label: 4, count: 1, steps: 8, sampler: "euler", guidance: 2, seed: 21 },
        { label: 7, count: 1, steps: 8, sampler: "heun", guidance: 2, seed: 22 },
      ];
      const runs = ps.map(async (p, i) => {
        const events: GenerateEvent[] = [];
        for await (const e of client.generate(p)) {
          events.push(e);
          if (i === 0 && e.type === "progress" && e.step === 3) await cluster.killWorker("worker-1");
        }
        return events.at(-1)!;
      });
      const results = await Promise.all(runs);
      expect(cluster.members() ?? ["worker-0"]).toEqual(["worker-0"]);
      for (const [i, p] of ps.entries()) {
        const r = results[i]!;
        if (r.type !== "result") throw new Error("no result");
        const want = await oracle(p);
        expect(maxAbsDiff(r.images[0]!.data, want[0]!)).toBeLessThanOrEqual(1e-5);
      }
    } finally {
      client.close();
      await cluster.stop();
    }
  });
});

describe("authentication and TLS", () => {
  const haveOpenssl = spawnSync("openssl", ["version"], { stdio: "ignore" }).status === 0;
  it.skipIf(!haveOpenssl)("requires the API token and serves over TLS", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sy-tls-"));
    const r = spawnSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "1"], { stdio: "ignore" });
    expect(r.status).toBe(0);
    const cert = readFileSync(join(dir, "cert.pem"));
    const cluster = await startEmbeddedCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 1, port: 0, apiTokens: ["s3cret"], tls: { cert, key: readFileSync(join(dir, "key.pem")) } });
    const good = createClient({ address: cluster.address, tls: { ca: cert }, token: "s3cret" });
    const bad = createClient({ address: cluster.address, tls: { ca: cert }, token: "nope", maxAttempts: 1 });
    const plain = createClient({ address: cluster.address, maxAttempts: 1 });
    try {
      expect((await good.generateImages({ label: 3, steps: 2, seed: 1 })).images).toHaveLength(1);
      expect((await failure(bad.generateImages({ label: 3, steps: 2 }))).code).toBe(Code.Unauthenticated);
      expect((await failure(plain.generateImages({ label: 3, steps: 2 }))).code).toBe(Code.Unavailable);
    } finally {
      good.close();
      bad.close();
      plain.close();
      await cluster.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A process cluster over a real nats-server with an SDK client and a bus connection of its own, always stopped after `fn`. */
async function withProcessCluster(
  name: string,
  workers: number,
  fn: (t: { c: ProcessCluster; client: SwitchyardClient; bus: Bus; s: Subjects }) => Promise<void>,
): Promise<void> {
  const prefix = `${name}${Math.random().toString(36).slice(2, 7)}`;
  const c = await startProcessCluster({ modelDir: BUNDLED_MODEL_DIR, workers, subjectPrefix: prefix, env: { SWITCHYARD_DENSE_THREADS: "1" } });
  const client = createClient({ address: c.address });
  const bus = await createNatsBus({ servers: c.nats, name: `${name}-test` });
  try {
    await fn({ c, client, bus, s: makeSubjects(prefix) });
  } finally {
    await bus.close();
    client.close();
    await c.stop();
  }
}

describe.skipIf(!haveNats)("live placement change (processes)", () => {
  it("switches plans under load with zero failed requests and unchanged outputs", async () => {
    await withProcessCluster("live", 2, async ({ client, bus, s }) => {
      const kv = await bus.kv(s.plansBucket);
      const trace = readTrace(join(BUNDLED_MODEL_DIR, "traces/solve.safetensors"));
      // the solved plan carries redundant copies of its two hottest experts per layer
      const solved = toPlanFile(addReplicas(trace, (await solveHeuristic(trace, { workers: 2 })).placement, 2), "dit-moe-fmnist", ["worker-0", "worker-1"], "heuristic");
      expect(solved.replicas?.flat().some((r) => r.length > 0)).toBe(true);
      const ps: GenerateParams[] = Array.from({ length: 6 }, (_, i) => ({ label: i, count: 1, steps: 8, sampler: i % 2 ? "heun" : "euler", guidance: 2, seed: 100 + i }));
      const runs = ps.map((p) => client.generateImages(p));
      await new Promise((r) => setTimeout(r, 800));
      await kv.put(s.planKey("dit-moe-fmnist"), { ...solved, version: 1 }); // apply mid-run
      await new Promise((r) => setTimeout(r, 800));
      const contiguous = toPlanFile(contiguousPlacement(2, 6, 32), "dit-moe-fmnist", ["worker-0", "worker-1"], "contiguous");
      await kv.put(s.planKey("dit-moe-fmnist"), { ...contiguous, version: 2 }); // and roll back
      const results = await Promise.all(runs); // none fails
      for (const [i, p] of ps.entries()) expect(maxAbsDiff(results[i]!.images[0]!.data, (await oracle(p))[0]!)).toBeLessThanOrEqual(1e-5);
      // the scheduler put both plans in force (it switches at its next tick boundary, idle or not)
      const want = (f: typeof solved) => f.owners.flatMap((row) => row.map((w) => f.workers[w])).join(",");
      let inForce: string[] = [];
      let withCopies = false;
      for (let i = 0; i < 50 && inForce.at(-1) !== want(contiguous); i++) {
        await new Promise((r) => setTimeout(r, 200));
        const hist = await kv.history(`${s.planKey("dit-moe-fmnist")}.in-force`);
        inForce = hist.map((e) => (e.value as { owners: string[] }).owners.join(","));
        withCopies = hist.some((e) => ((e.value as { replicas?: string[][] }).replicas ?? []).some((r) => r.length > 0));
      }
      expect(inForce).toContain(want(solved));
      expect(withCopies).toBe(true);
      // each switch records when, and the workers' traffic then (what `placement status` subtracts)
      const last = (await kv.get(`${s.planKey("dit-moe-fmnist")}.in-force`))!.value as { appliedAt?: string; trafficAtApply?: Record<string, { bytesReceived: number }> };
      expect(Date.parse(last.appliedAt!)).toBeGreaterThan(0);
      expect(Object.keys(last.trafficAtApply ?? {}).sort()).toEqual(["worker-0", "worker-1"]);
      expect(inForce.at(-1)).toBe(want(contiguous));
    });
  }, 120_000);
});

describe.skipIf(!haveNats)("events over the bus payload limit (processes, real nats-server)", () => {
  it("refuses previews that cannot fit at admission, and a scheduler handed one anyway fails that request and lives on", async () => {
    await withProcessCluster("big", 1, async ({ c, client, bus, s }) => {
      // #12 defect 1: this valid-looking request made a progress event over NATS's 1 MiB limit
      const e = await failure(client.generateImages({ count: 256, steps: 2, previewInterval: 1 }));
      expect(e.code).toBe(Code.InvalidArgument);
      expect(e.message).toContain("preview_interval 1 with count 256: previews are sent for at most 250 images per request");
      // the same request straight onto the bus, past the gateway's admission
      const events: { type: string; code?: number; message?: string }[] = [];
      const gotError = new Promise<void>((resolve) => bus.subscribe(s.events("big-1"), (p) => (events.push(p as (typeof events)[number]), (p as { type: string }).type === "error" && resolve())));
      await bus.flush();
      await bus.request(s.intake("dit-moe-fmnist"), {
        requestId: "big-1", model: "dit-moe-fmnist", params: { label: 1, conditional: true, count: 256, steps: 2, sampler: "euler", guidance: 2, shift: 1, seed: 1 }, priority: 0, deadlineMs: null, previewInterval: 1,
      });
      await gotError;
      expect(events.at(-1)).toMatchObject({ type: "error", code: Code.ResourceExhausted, message: expect.stringContaining("could not send the request's progress event") });
      // the scheduler is alive and serving
      expect((await client.generateImages({ label: 2, count: 2, steps: 2, previewInterval: 1 })).images).toHaveLength(2);
      expect(c.scheduler.proc.exitCode).toBeNull();
    });
  }, 120_000);
});

describe("a client that stops reading (#12 defect 7: slow readers grew the gateway)", () => {
  it("is cut off with RESOURCE_EXHAUSTED once its stream holds the limit, and its request is cancelled", async () => {
    const c = await startEmbeddedCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 1, port: 0, maxStreamBufferBytes: 512 * 1024 });
    // A raw HTTP/2 client that never reads its response: HTTP/2 flow control then holds
    // the server's writes (grpc-js's own client keeps reading into memory when paused).
    const Ctor = clientFor(loadContracts().switchyard, "Switchyard") as unknown as { service: { Generate: { requestSerialize(v: unknown): Buffer } } };
    const msg = Ctor.service.Generate.requestSerialize({ label: 1, count: 64, steps: 100, previewInterval: 1, guidance: 1 });
    const frame = Buffer.alloc(5 + msg.byteLength);
    frame.writeUInt32BE(msg.byteLength, 1);
    msg.copy(frame, 5);
    const session = http2.connect(`http://${c.address}`);
    try {
      const stream = session.request({ ":method": "POST", ":path": "/switchyard.v1.Switchyard/Generate", "content-type": "application/grpc", te: "trailers" });
      stream.end(frame);
      stream.pause();
      let cut = false;
      for (let i = 0; i < 300 && !cut; i++) {
        await new Promise((r) => setTimeout(r, 100));
        cut = c.gateway.gateway.metrics.failed.get("ResourceExhausted") === 1;
      }
      expect(cut).toBe(true);
      // the scheduler drops the request before its next tick, long before its 100 steps
      for (let i = 0; i < 50 && c.scheduler.stats().queued !== 0; i++) await new Promise((r) => setTimeout(r, 100));
      expect(c.scheduler.stats().queued).toBe(0);
      expect(c.scheduler.stats().steps).toBeLessThan(50);
      // the client reads on and finds out why
      const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => stream.on("trailers", resolve));
      stream.resume();
      const t = await trailers;
      expect(Number(t["grpc-status"])).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(decodeURIComponent(String(t["grpc-message"]))).toContain("the client is not reading its stream");
    } finally {
      session.destroy();
      await c.stop();
    }
  }, 60_000);
});

describe.skipIf(!haveNats)("a hung worker (processes, SIGSTOP)", () => {
  it("is dropped once its heartbeats stop, and the requests it held complete elsewhere (#12 defect 5: they waited for a 60 s RunTick timeout)", async () => {
    await withProcessCluster("hung", 2, async ({ c, client }) => {
      const hung = c.workers.find((w) => w.name === "worker-1")!;
      try {
        const ps: GenerateParams[] = Array.from({ length: 6 }, (_, i) => ({ label: i, count: 2, steps: 30, guidance: 2, seed: 300 + i }));
        const t0 = Date.now();
        const runs = ps.map((p) => client.generateImages(p));
        await new Promise((r) => setTimeout(r, 1500));
        hung.proc.kill("SIGSTOP");
        const results = await Promise.all(runs);
        const ms = Date.now() - t0;
        console.log(`hung worker: ${ps.length} requests done in ${ms} ms`);
        for (const [i, p] of ps.entries()) expect(maxAbsDiff(results[i]!.images[1]!.data, (await oracle(p))[1]!)).toBeLessThanOrEqual(1e-5);
        // Heartbeats stop at once and the liveness budget is 3.5 s. Measured here: 4.3 s for
        // this load with no fault; 24.1 s with the hung worker before (the ticks waited on
        // it); 7.4 s after.
        // Bounded well below the 60 s RunTick timeout it waited for (the suite runs files side by side on 2 cores: 17 s seen).
        expect(ms).toBeLessThan(40_000);
      } finally {
        hung.proc.kill("SIGCONT");
      }
    });
  }, 120_000);
});
