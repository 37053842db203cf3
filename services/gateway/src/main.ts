import { connectBus } from "@switchyard/bus";
import { runService } from "@switchyard/config";
import { resolveGatewayConfig, startGateway } from "@switchyard/gateway";
import { createLogger, setupTracing } from "@switchyard/telemetry";

/** Gateway: the public gRPC API; hands requests to the scheduler over NATS. */
runService("gateway", async () => {
  const cfg = resolveGatewayConfig();
  const logger = createLogger("gateway");
  // OpenTelemetry when SWITCHYARD_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_ENDPOINT) is set; off otherwise.
  const tracing = await setupTracing("gateway");
  const bus = await connectBus(cfg, "switchyard-gateway");
  const gateway = await startGateway(cfg, { bus, log: (m) => logger.info(m) });
  return {
    async stop() {
      await gateway.stop();
      await bus.close();
      await tracing.shutdown();
    },
  };
});
