import { randomUUID } from "node:crypto";
import { createNatsBus, subjects as makeSubjects } from "@switchyard/bus";
import { SwitchyardError } from "@switchyard/errors";
import { runService } from "@switchyard/config";
import { DEFAULT_DENSE_THREADS, DEFAULT_DENSE_THREADS_WITH_DEVICE, createOnnxModel } from "@switchyard/model";
import type { Heartbeat } from "@switchyard/scheduler";
import { createWorkerClients, startWorkerServer } from "@switchyard/transport";
import { createLogger, createServiceRegistry, setupTracing, startMetricsServer } from "@switchyard/telemetry";
import { createWorkerCache, createWorkerMetrics, createWorkerRuntime, parseExpertBudget, trafficTotals, warmUpDense } from "@switchyard/worker";
import { resolveWorkerConfig } from "./config";

/** Worker: holds the experts the scheduler assigns, serves ticks and row exchanges. */
runService("worker", async () => {
  const cfg = resolveWorkerConfig();
  const logger = createLogger("worker", { worker: cfg.id, group: cfg.group });
  // OpenTelemetry when SWITCHYARD_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_ENDPOINT) is set; off otherwise.
  const tracing = setupTracing("worker", { "switchyard.group": cfg.group, "switchyard.worker": cfg.id });
  const log = (m: string) => logger.info(m);
  const subjects = makeSubjects(cfg.subjectPrefix, cfg.group);
  const incarnation = randomUUID();
  const bus = await createNatsBus({ servers: cfg.nats, ...(cfg.natsCredentials ? { credentials: cfg.natsCredentials } : {}), name: `switchyard-worker ${cfg.id}` });
  // Experts are loaded when the scheduler assigns them (SetExperts), not at start.
  const budget = parseExpertBudget(cfg.expertBudget);
  const denseThreads = cfg.denseThreads ?? (budget ? DEFAULT_DENSE_THREADS_WITH_DEVICE : DEFAULT_DENSE_THREADS);
  const parts = await createOnnxModel({ dir: cfg.modelDir, experts: () => false, denseThreads, expertThreads: cfg.expertThreads });
  const peers = createWorkerClients();
  bus.subscribe(subjects.heartbeat, (p) => {
    const hb = p as unknown as Heartbeat;
    if (hb?.workerId && hb.workerId !== cfg.id) peers.setAddress(hb.workerId, hb.address);
  });
  bus.subscribe(subjects.leave, (p) => {
    const id = (p as { workerId?: string })?.workerId;
    if (id) peers.remove(id);
  });
  // Under a budget, experts live on an expert device with a predictive (or LRU/LFU) cache.
  const residency = budget ? createWorkerCache({ modelDir: cfg.modelDir, manifest: parts.manifest, budget, policy: cfg.cachePolicy, lookahead: cfg.cacheLookahead, threads: cfg.expertThreads, streams: cfg.expertStreams }) : undefined;
  if (budget) log(`expert cache: ${cfg.cachePolicy}, budget ${cfg.expertBudget}, lookahead ${cfg.cacheLookahead}`);
  // Warm before the first heartbeat: the scheduler sends no tick to a worker it has not heard of.
  const warmUp = { rows: cfg.warmUpRows, rounds: cfg.warmUpRounds };
  if (warmUp.rows > 0 && warmUp.rounds > 0) log(`warmed up at ${warmUp.rows} rows × ${warmUp.rounds} in ${(await warmUpDense(parts, warmUp)).toFixed(0)} ms`);
  const registry = createServiceRegistry("worker", { group: cfg.group, worker: cfg.id });
  const instruments = createWorkerMetrics(registry);
  // SWITCHYARD_METRICS_PORT=off: no instruments at all (the overhead baseline).
  const instrumented = cfg.metricsPort !== "off";
  const runtime = createWorkerRuntime({ id: cfg.id, parts, peers: instrumented ? instruments.peers(peers) : peers, gate: cfg.gateTurns === "off" ? false : { turns: cfg.gateTurns }, warmUp, ...(residency ? { residency } : {}) });
  const server = await startWorkerServer(instrumented ? instruments.handler(runtime) : runtime, { host: cfg.host, port: cfg.port });
  const metrics = cfg.metricsPort === "off" ? undefined : await startMetricsServer({ host: cfg.host, port: cfg.metricsPort, registry, ...(cfg.metricsToken ? { token: cfg.metricsToken } : {}) });
  if (metrics) log(`metrics on ${cfg.host}:${metrics.port}/metrics`);
  // Ready (grpc.health.v1 "switchyard.worker.v1.Worker") while the plan in force names this worker.
  server.setServing(false);
  const inForce = await (await bus.kv(subjects.plansBucket)).watch(`${subjects.planKey(parts.manifest.name)}.in-force`, (e) => {
    const workers = (e.value as { workers?: unknown } | null)?.workers;
    server.setServing(Array.isArray(workers) && workers.includes(cfg.id));
  });
  const address = `${cfg.advertiseHost ?? cfg.host}:${server.port}`;
  const beat = () => bus.publish(subjects.heartbeat, { workerId: cfg.id, address, incarnation, traffic: trafficTotals(runtime.stats()) });
  beat();
  const timer = setInterval(beat, cfg.heartbeatMs);
  log(`serving data plane on ${address} (group ${cfg.group})`);
  return {
    async stop() {
      // Drain: leave the plan first (experts move, images re-home), serving until the
      // scheduler answers that a plan without this worker is in force.
      clearInterval(timer);
      server.setServing(false);
      if (cfg.drainTimeoutMs > 0) {
        const t0 = Date.now();
        try {
          await bus.request(subjects.drain, { workerId: cfg.id, incarnation }, { timeoutMs: cfg.drainTimeoutMs });
          log(`drained: left the plan in ${Date.now() - t0} ms`);
        } catch (e) {
          log(`stopping without a drain: ${SwitchyardError.from(e).message}`);
        }
      }
      inForce.unsubscribe();
      bus.publish(subjects.leave, { workerId: cfg.id });
      await bus.flush().catch(() => undefined);
      await server.stop();
      await metrics?.close();
      await runtime.close();
      peers.close();
      await parts.close();
      await bus.close();
      await tracing.shutdown();
      log("stopped");
    },
  };
});
