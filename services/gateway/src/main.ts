import { createNatsBus, subjects as makeSubjects } from "@switchyard/bus";
import { runService } from "@switchyard/config";
import { startGatewayServer } from "@switchyard/gateway";
import { loadManifest } from "@switchyard/manifest";
import { createLogger, setupTracing } from "@switchyard/telemetry";
import { resolveGatewayConfig } from "./config";

/** Gateway: the public gRPC API; hands requests to the scheduler over NATS. */
runService("gateway", async () => {
  const cfg = resolveGatewayConfig();
  const logger = createLogger("gateway");
  // OpenTelemetry when SWITCHYARD_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_ENDPOINT) is set; off otherwise.
  const tracing = setupTracing("gateway");
  const manifest = loadManifest(cfg.modelDir);
  const bus = await createNatsBus({ servers: cfg.nats, ...(cfg.natsCredentials ? { credentials: cfg.natsCredentials } : {}), name: "switchyard-gateway" });
  const server = await startGatewayServer({
    bus, subjects: makeSubjects(cfg.subjectPrefix), manifest, host: cfg.host, port: cfg.port, metricsPort: cfg.metricsPort,
    ...(cfg.httpPort !== "off" ? { httpPort: cfg.httpPort } : {}),
    maxInflight: cfg.maxInflight, maxStreamBufferBytes: cfg.maxStreamBufferBytes,
    ...(cfg.metricsToken ? { metricsToken: cfg.metricsToken } : {}), apiTokens: cfg.tokens, ...(cfg.tls ? { tls: cfg.tls } : {}),
  });
  if (server.httpPort !== undefined) logger.info(`HTTP API (KServe v2 REST, OpenAI images) on ${cfg.host}:${server.httpPort}`);
  logger.info(`serving ${manifest.name} on ${server.address}${cfg.tls ? " (TLS)" : ""}; metrics on :${server.metricsPort}/metrics`);
  return {
    async stop() {
      await server.stop({ drainMs: cfg.drainTimeoutMs });
      await bus.close();
      await tracing.shutdown();
    },
  };
});
