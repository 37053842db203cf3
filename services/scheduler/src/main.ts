import { connectBus } from "@switchyard/bus";
import { runService } from "@switchyard/config";
import { resolveSchedulerConfig, startScheduler } from "@switchyard/scheduler";
import { createLogger, setupTracing } from "@switchyard/telemetry";

/** Scheduler: owns sampler state, batches steps of many requests per tick. */
runService("scheduler", async () => {
  const cfg = resolveSchedulerConfig();
  const logger = createLogger("scheduler", { group: cfg.group });
  // OpenTelemetry when SWITCHYARD_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_ENDPOINT) is set; off otherwise.
  const tracing = await setupTracing("scheduler", { "switchyard.group": cfg.group });
  const bus = await connectBus(cfg, `switchyard-scheduler ${cfg.group}`);
  // One line per request that leaves, with its id (the access log).
  const scheduler = await startScheduler(cfg, { bus, log: (m) => logger.info(m), onFinished: (f) => logger.info(f, "request finished") });
  return {
    async stop() {
      await scheduler.stop();
      await bus.close();
      await tracing.shutdown();
    },
  };
});
