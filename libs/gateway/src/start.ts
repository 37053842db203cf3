import { type Bus, subjects as makeSubjects } from "@switchyard/contract";
import { loadManifest } from "@switchyard/manifest";
import type { WorkerTraffic } from "@switchyard/proto";
import type { ResolvedGatewayConfig } from "./config";
import { type GatewayServer, startGatewayServer } from "./server";

/**
 * The gateway, as `services/gateway` runs it and as the embedded cluster does: the
 * public gRPC API (native + KServe v2), the HTTP API, /metrics and the probes.
 */
export interface GatewayDeps {
  readonly bus: Bus;
  readonly log?: (msg: string) => void;
  /** Per-worker traffic for /metrics when the workers are in this process (default: from their heartbeats). */
  readonly workerTraffic?: () => ReadonlyMap<string, WorkerTraffic>;
}

export interface StartedGateway {
  readonly server: GatewayServer;
  /** With `drainMs` (default: the config's drain timeout), lets calls in flight finish first. */
  stop(options?: { drainMs?: number }): Promise<void>;
}

export async function startGateway(cfg: ResolvedGatewayConfig, deps: GatewayDeps): Promise<StartedGateway> {
  const manifest = loadManifest(cfg.modelDir);
  const server = await startGatewayServer({
    bus: deps.bus, subjects: makeSubjects(cfg.subjectPrefix), manifest, host: cfg.host, port: cfg.port,
    ...(cfg.metricsPort !== "off" ? { metricsPort: cfg.metricsPort } : {}),
    ...(cfg.httpPort !== "off" ? { httpPort: cfg.httpPort } : {}),
    maxInflight: cfg.maxInflight, maxStreamBufferBytes: cfg.maxStreamBufferBytes,
    ...(cfg.metricsToken ? { metricsToken: cfg.metricsToken } : {}), apiTokens: cfg.tokens, ...(cfg.tls ? { tls: cfg.tls } : {}),
    ...(deps.workerTraffic ? { workerTraffic: deps.workerTraffic } : {}),
    watch: { submitRetryMs: cfg.submitRetryMs },
  });
  if (server.httpPort !== undefined) deps.log?.(`HTTP API (KServe v2 REST, OpenAI images) on ${cfg.host}:${server.httpPort}`);
  deps.log?.(`serving ${manifest.name} on ${server.address}${cfg.tls ? " (TLS)" : ""}${server.metricsPort !== undefined ? `; metrics on :${server.metricsPort}/metrics` : ""}`);
  return {
    server,
    stop: (options = {}) => server.stop({ drainMs: options.drainMs ?? cfg.drainTimeoutMs }),
  };
}
