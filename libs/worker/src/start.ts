import { randomUUID } from "node:crypto";
import { availableParallelism } from "node:os";
import { type Bus, channels, expertsOf, planInForce, publish, request, subjects as makeSubjects, subscribe, type ExpertPlan } from "@switchyard/contract";
import { SwitchyardError } from "@switchyard/errors";
import { type ModelParts, createOnnxModel, loadManifest, threadDefaults } from "@switchyard/model";
import { createServiceRegistry, startMetricsServer } from "@switchyard/telemetry";
import { createWorkerClients, startExchangeServer, startWorkerServer } from "@switchyard/data-plane";
import { createWorkerCache, parseExpertBudget } from "./worker-cache";
import type { WorkerConfig } from "./config";
import { createWorkerMetrics } from "./metrics";
import { type LocalPeers, type WorkerRuntime, createWorkerRuntime, trafficTotals } from "./runtime";
import { warmUpDense, warmUpExperts } from "./warm-up-parts";

/**
 * One worker, as `services/worker` runs it and as the embedded cluster runs each of its
 * workers: the model's parts (dense threads by budget), the expert cache under a budget
 * (expert threads and streams), the compute gate, warm-up, and the runtime. With its own
 * data plane (default) it also serves gRPC, heartbeats, follows the plan in force for
 * readiness, and drains on stop; `inProcess` skips all of that (the embedded cluster's
 * workers exchange rows by direct calls and its pool drives them).
 */
export interface WorkerDeps {
  readonly bus: Bus;
  readonly log?: (msg: string) => void;
  /** In this process: rows go to `peers` by direct calls; the worker starts holding its experts under `plan`. */
  readonly inProcess?: { readonly peers: LocalPeers; readonly plan: ExpertPlan };
}

export interface StartedWorker {
  readonly runtime: WorkerRuntime;
  /** The data plane's host:port as advertised (absent in process). */
  readonly address?: string;
  readonly metricsPort?: number;
  stop(): Promise<void>;
}

export async function startWorker(cfg: WorkerConfig, deps: WorkerDeps): Promise<StartedWorker> {
  const log = deps.log ?? (() => undefined);
  const { bus } = deps;
  // Peers' addresses from their heartbeats, heard from the start: by the first heartbeat
  // of its own (after loading and warming up) it knows them, so its first tick can reach them.
  const subjects = makeSubjects(cfg.subjectPrefix, cfg.group);
  const ch = channels(subjects);
  const secret = cfg.clusterSecret ? { clusterSecret: cfg.clusterSecret } : {};
  const tcpExchange = cfg.exchangeTransport === "tcp";
  const peers = deps.inProcess ? undefined : createWorkerClients({ ...secret, from: cfg.id, tcpExchange });
  const subs = peers
    ? [subscribe(bus, ch.heartbeat, (hb) => hb.workerId !== cfg.id && peers.setAddress(hb.workerId, hb.address, hb.exchangeAddress)), subscribe(bus, ch.leave, (m) => peers.remove(m.workerId))]
    : [];
  const budget = parseExpertBudget(cfg.expertBudget);
  const cores = cfg.cores ?? availableParallelism();
  const threads = threadDefaults(cores);
  const denseThreads = cfg.denseThreads ?? threads.denseThreads;
  const sharedThread = cfg.sharedThread ? cfg.sharedThread === "on" : threads.sharedThread;
  // Over its own data plane, experts are loaded when the scheduler assigns them (SetExperts);
  // in process, the worker starts with those of the plan it is given.
  const held = deps.inProcess ? new Set(expertsOf(deps.inProcess.plan, cfg.id)) : new Set<number>();
  const E = loadManifest(cfg.modelDir).moe.numExperts;
  const parts: ModelParts = await createOnnxModel({ dir: cfg.modelDir, experts: (l, e) => !budget && held.has(l * E + e), denseThreads, expertThreads: cfg.expertThreads, groupExperts: cfg.groupExperts === "on", sharedThread, executionProvider: cfg.executionProvider });
  // Under a budget, experts live on an expert device with a predictive (or LRU/LFU) cache.
  const residency = budget
    ? createWorkerCache({ modelDir: cfg.modelDir, manifest: parts.manifest, budget, policy: cfg.cachePolicy, lookahead: cfg.cacheLookahead, threads: cfg.expertThreads, streams: cfg.expertStreams, executionProvider: cfg.executionProvider })
    : undefined;
  log(`${cores} cores: ${denseThreads} dense threads, the shared expert ${sharedThread ? "on a thread of its own" : "on the main thread"}; ONNX Runtime on ${cfg.executionProvider}`);
  if (budget) log(`expert cache: ${cfg.cachePolicy}, budget ${cfg.expertBudget}, lookahead ${cfg.cacheLookahead}`);
  if (residency && held.size > 0) await residency.setHeld([...held]);
  // Warm before the first heartbeat: the scheduler sends no tick to a worker it has not heard of.
  const warmUp = { rows: cfg.warmUpRows, rounds: cfg.warmUpRounds };
  if (warmUp.rows > 0 && warmUp.rounds > 0) {
    const ms = (await warmUpDense(parts, warmUp)) + (residency || held.size === 0 ? 0 : await warmUpExperts(parts, [...held].map((g) => [Math.floor(g / E), g % E] as const), warmUp));
    log(`warmed up at ${warmUp.rows} rows × ${warmUp.rounds} in ${ms.toFixed(0)} ms`);
  }
  const gate = cfg.gateTurns === "off" ? (false as const) : { turns: cfg.gateTurns };
  const runtimeWarmUp = warmUp.rows > 0 && warmUp.rounds > 0 ? { warmUp } : {};

  if (!peers) {
    // In process (peers are the local runtimes).
    const local = deps.inProcess!.peers;
    const runtime = createWorkerRuntime({ id: cfg.id, parts, peers: local, gate, reuseKeepBytes: cfg.reuseKeepBytes, ...runtimeWarmUp, ...(residency ? { residency } : {}) });
    local.add(runtime);
    return {
      runtime,
      async stop() {
        await runtime.close();
        await parts.close();
      },
    };
  }

  const incarnation = randomUUID();
  const registry = createServiceRegistry("worker", { group: cfg.group, worker: cfg.id });
  const instruments = createWorkerMetrics(registry);
  // SWITCHYARD_METRICS_PORT=off: no instruments at all (the overhead baseline).
  const instrumented = cfg.metricsPort !== "off";
  const runtime = createWorkerRuntime({ id: cfg.id, parts, peers: instrumented ? instruments.peers(peers) : peers, gate, reuseKeepBytes: cfg.reuseKeepBytes, ...runtimeWarmUp, ...(residency ? { residency } : {}) });
  const handler = instrumented ? instruments.handler(runtime) : runtime;
  const server = await startWorkerServer(handler, { host: cfg.host, port: cfg.port, ...secret });
  // Rows from peers also come over plain TCP (exchange-tcp.ts: ~4× less time and CPU per message than grpc-js).
  const exchange = tcpExchange ? await startExchangeServer((r) => handler.exchange(r), { host: cfg.host, port: cfg.exchangePort, log, ...secret }) : undefined;
  const metrics = cfg.metricsPort === "off" ? undefined : await startMetricsServer({ host: cfg.host, port: cfg.metricsPort, registry, ...(cfg.metricsToken ? { token: cfg.metricsToken } : {}) });
  if (metrics) log(`metrics on ${cfg.host}:${metrics.port}/metrics`);
  // Ready (grpc.health.v1 "switchyard.worker.v1.Worker") while the plan in force names this worker.
  server.setServing(false);
  const inForce = await (await bus.kv(subjects.plansBucket)).watch(subjects.planInForceKey(parts.manifest.name), (e) => {
    const r = planInForce.safeParse(e.value);
    server.setServing(r.success && r.data.workers.includes(cfg.id));
  });
  const address = `${cfg.advertiseHost ?? cfg.host}:${server.port}`;
  const exchangeAddress = exchange ? { exchangeAddress: `${cfg.advertiseHost ?? cfg.host}:${exchange.port}` } : {};
  const beat = () => publish(bus, ch.heartbeat, { workerId: cfg.id, address, ...exchangeAddress, incarnation, traffic: trafficTotals(runtime.stats()) });
  beat();
  const timer = setInterval(beat, cfg.heartbeatMs);
  log(`serving data plane on ${address}${exchange ? `, row exchange on ${exchangeAddress.exchangeAddress}` : ""} (group ${cfg.group})`);
  return {
    runtime,
    address,
    ...(metrics ? { metricsPort: metrics.port } : {}),
    async stop() {
      // Drain: leave the plan first (experts move, images re-home), serving until the
      // scheduler answers that a plan without this worker is in force.
      clearInterval(timer);
      server.setServing(false);
      if (cfg.drainTimeoutMs > 0) {
        const t0 = Date.now();
        try {
          await request(bus, ch.drain, { workerId: cfg.id, incarnation }, { timeoutMs: cfg.drainTimeoutMs });
          log(`drained: left the plan in ${Date.now() - t0} ms`);
        } catch (e) {
          log(`stopping without a drain: ${SwitchyardError.from(e).message}`);
        }
      }
      inForce.unsubscribe();
      for (const s of subs) s.unsubscribe();
      publish(bus, ch.leave, { workerId: cfg.id });
      await bus.flush().catch(() => undefined);
      await server.stop();
      await exchange?.stop();
      await metrics?.close();
      await runtime.close();
      peers.close();
      await parts.close();
    },
  };
}
