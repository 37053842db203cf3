import { connectBus } from "@switchyard/bus";
import { runService } from "@switchyard/config";
import { createLogger, setupTracing } from "@switchyard/telemetry";
import { resolveWorkerConfig, startWorker } from "@switchyard/worker";

/** Worker: holds the experts the scheduler assigns, serves ticks and row exchanges. */
runService("worker", async () => {
  const cfg = resolveWorkerConfig();
  const logger = createLogger("worker", { worker: cfg.id, group: cfg.group });
  // OpenTelemetry when SWITCHYARD_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_ENDPOINT) is set; off otherwise.
  const tracing = await setupTracing("worker", { "switchyard.group": cfg.group, "switchyard.worker": cfg.id });
  const bus = await connectBus(cfg, `switchyard-worker ${cfg.id}`);
  const worker = await startWorker(cfg, { bus, log: (m) => logger.info(m) });
  return {
    async stop() {
      await worker.stop();
      await bus.close();
      await tracing.shutdown();
      logger.info("stopped");
    },
  };
});
