import { createNatsBus, subjects as makeSubjects } from "@switchyard/bus";
import { runService } from "@switchyard/config";
import { loadManifest } from "@switchyard/manifest";
import { createRemotePool, createSchedulerMetrics, createSchedulerService, createTraceRecorder } from "@switchyard/scheduler";
import { createLogger, createServiceRegistry, setupTracing, startMetricsServer } from "@switchyard/telemetry";
import { createWorkerClients, startHealthServer } from "@switchyard/transport";
import { resolveSchedulerConfig } from "./config";

/** Scheduler: owns sampler state, batches steps of many requests per tick. */
runService("scheduler", async () => {
  const cfg = resolveSchedulerConfig();
  const logger = createLogger("scheduler", { group: cfg.group });
  // OpenTelemetry when SWITCHYARD_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_ENDPOINT) is set; off otherwise.
  const tracing = setupTracing("scheduler", { "switchyard.group": cfg.group });
  const log = (m: string) => logger.info(m);
  const manifest = loadManifest(cfg.modelDir);
  const subjects = makeSubjects(cfg.subjectPrefix, cfg.group);
  const bus = await createNatsBus({ servers: cfg.nats, ...(cfg.natsCredentials ? { credentials: cfg.natsCredentials } : {}), name: `switchyard-scheduler ${cfg.group}` });
  const clients = createWorkerClients();
  const pool = createRemotePool({
    bus, subjects, model: manifest.name, layers: manifest.architecture.numLayers, experts: manifest.moe.numExperts, clients, livenessMs: cfg.livenessMs, log,
  });
  const traces = cfg.traceDir
    ? createTraceRecorder({ dir: cfg.traceDir, model: manifest.name, layers: manifest.architecture.numLayers, experts: manifest.moe.numExperts, topK: manifest.moe.topK, tokens: manifest.architecture.tokens })
    : undefined;
  const registry = createServiceRegistry("scheduler", { group: cfg.group });
  const scheduler = createSchedulerService({
    bus, subjects, manifest, pool, log,
    // SWITCHYARD_METRICS_PORT=off: no instruments at all (the overhead baseline).
    ...(cfg.metricsPort === "off" ? {} : { metrics: createSchedulerMetrics(registry) }),
    // One line per request that leaves, with its id (the access log).
    onFinished: (f) => logger.info(f, "request finished"), routeAwareBatching: cfg.routeAwareBatching, warmUpTicks: cfg.warmUpTicks,
    limits: { maxTickRows: cfg.maxTickRows, maxQueued: cfg.maxQueued, maxRequestsPerTick: cfg.maxRequestsPerTick },
    ...(traces ? { onRouting: (r) => traces.record(r) } : {}),
  });
  scheduler.start();
  // Ready ("switchyard.Scheduler") while a plan over at least one worker is in force.
  const health = await startHealthServer({ host: cfg.host, port: cfg.port, service: "switchyard.Scheduler", serving: false });
  const readiness = setInterval(() => health.setServing(pool.members().length > 0), 500);
  const metrics = cfg.metricsPort === "off" ? undefined : await startMetricsServer({ host: cfg.host, port: cfg.metricsPort, registry, ...(cfg.metricsToken ? { token: cfg.metricsToken } : {}) });
  if (metrics) log(`metrics on ${cfg.host}:${metrics.port}/metrics`);
  log(`serving ${manifest.name} for group ${cfg.group} (tick budget ${cfg.maxTickRows} rows, queue ${cfg.maxQueued}); health on ${cfg.host}:${health.port}`);
  return {
    async stop() {
      clearInterval(readiness);
      health.setServing(false);
      await scheduler.stop({ drainMs: cfg.drainTimeoutMs });
      await health.stop();
      await metrics?.close();
      const last = traces?.flush();
      if (last) log(`wrote routing trace ${last}`);
      pool.close();
      clients.close();
      await bus.close();
      await tracing.shutdown();
    },
  };
});
