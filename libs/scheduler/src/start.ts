import { type Bus, type WorkerPool, subjects as makeSubjects } from "@switchyard/contract";
import { loadManifest } from "@switchyard/manifest";
import { createServiceRegistry, startMetricsServer } from "@switchyard/telemetry";
import { createWorkerClients, startHealthServer } from "@switchyard/data-plane";
import type { SchedulerConfig } from "./config";
import { createSchedulerMetrics } from "./metrics";
import { createRemotePool } from "./remote-pool";
import { createRequestJournal } from "./journal";
import { type FinishedRequest, type SchedulerService, createSchedulerService } from "./service";
import { type TraceRecorder, createTraceRecorder } from "./trace-recorder";

/**
 * One group's scheduler, as `services/scheduler` runs it and as the embedded cluster
 * does: the scheduler service over a pool (by default the group's workers in other
 * processes, found by their heartbeats and driven over gRPC), its trace recorder, its
 * health listener (readiness: a plan over ≥ 1 worker in force) and /metrics. Accepted
 * requests go through the group's request journal (journal.ts), and the ones a dead
 * predecessor left there are resumed at start.
 */
export interface SchedulerDeps {
  readonly bus: Bus;
  readonly log?: (msg: string) => void;
  /** Called once per request that leaves (the access log). */
  readonly onFinished?: (f: FinishedRequest) => void;
  /** The workers; default: those of the group in other processes (a remote pool). */
  readonly pool?: WorkerPool;
}

export interface StartedScheduler {
  readonly service: SchedulerService;
  readonly pool: WorkerPool;
  readonly traces: TraceRecorder | undefined;
  readonly healthPort?: number;
  readonly metricsPort?: number;
  /** With `drainMs` (default: the config's drain timeout), lets the requests it holds finish first. */
  stop(options?: { drainMs?: number }): Promise<void>;
}

export async function startScheduler(cfg: SchedulerConfig, deps: SchedulerDeps): Promise<StartedScheduler> {
  const { bus } = deps;
  const log = deps.log ?? (() => undefined);
  const manifest = loadManifest(cfg.modelDir);
  const subjects = makeSubjects(cfg.subjectPrefix, cfg.group);
  const clients = deps.pool ? undefined : createWorkerClients(cfg.clusterSecret ? { clusterSecret: cfg.clusterSecret } : {});
  const remote = clients
    ? createRemotePool({ bus, subjects, model: manifest.name, layers: manifest.architecture.numLayers, experts: manifest.moe.numExperts, clients, livenessMs: cfg.livenessMs, log })
    : undefined;
  const pool = deps.pool ?? remote!;
  const traces = cfg.traceDir
    ? createTraceRecorder({ dir: cfg.traceDir, model: manifest.name, layers: manifest.architecture.numLayers, experts: manifest.moe.numExperts, topK: manifest.moe.topK, tokens: manifest.architecture.tokens })
    : undefined;
  const registry = createServiceRegistry("scheduler", { group: cfg.group });
  const service = createSchedulerService({
    bus, subjects, manifest, pool, log,
    journal: createRequestJournal(bus, subjects, log),
    // SWITCHYARD_METRICS_PORT=off: no instruments at all (the overhead baseline).
    ...(cfg.metricsPort === "off" ? {} : { metrics: createSchedulerMetrics(registry) }),
    ...(deps.onFinished ? { onFinished: deps.onFinished } : {}),
    routeAwareBatching: cfg.routeAwareBatching, warmUpTicks: cfg.warmUpTicks,
    limits: { maxTickRows: cfg.maxTickRows, maxQueued: cfg.maxQueued, maxRequestsPerTick: cfg.maxRequestsPerTick, maxQueuedWork: cfg.maxQueuedWork, maxReuseBytes: cfg.maxReuseBytes },
    ...(traces ? { onRouting: (r) => traces.record(r) } : {}),
  });
  service.start();
  // Ready ("switchyard.Scheduler") while a plan over at least one worker is in force.
  const health = cfg.port === "off" ? undefined : await startHealthServer({ host: cfg.host, port: cfg.port, service: "switchyard.Scheduler", serving: false });
  const readiness = health ? setInterval(() => health.setServing(pool.members().length > 0), 500) : undefined;
  const metrics = cfg.metricsPort === "off" ? undefined : await startMetricsServer({ host: cfg.host, port: cfg.metricsPort, registry, ...(cfg.metricsToken ? { token: cfg.metricsToken } : {}) });
  if (metrics) log(`metrics on ${cfg.host}:${metrics.port}/metrics`);
  log(`serving ${manifest.name} for group ${cfg.group} (tick budget ${cfg.maxTickRows} rows, queue ${cfg.maxQueued})${health ? `; health on ${cfg.host}:${health.port}` : ""}`);
  return {
    service,
    pool,
    traces,
    ...(health ? { healthPort: health.port } : {}),
    ...(metrics ? { metricsPort: metrics.port } : {}),
    async stop(options = {}) {
      clearInterval(readiness);
      health?.setServing(false);
      await service.stop({ drainMs: options.drainMs ?? cfg.drainTimeoutMs });
      await health?.stop();
      await metrics?.close();
      const last = traces?.flush();
      if (last) log(`wrote routing trace ${last}`);
      remote?.close();
      clients?.close();
    },
  };
}
