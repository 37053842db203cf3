import { readFileSync } from "node:fs";
import { z } from "zod";
import { LOG_FORMATS } from "@switchyard/telemetry";
import { intInRange, parseOrThrow, port, readEnv } from "@switchyard/config";
import { DEFAULT_HTTP_PORT, DEFAULT_MAX_INFLIGHT, DEFAULT_MAX_STREAM_BUFFER_BYTES } from "@switchyard/gateway";
import { BUNDLED_MODEL_DIR } from "@switchyard/manifest";

export const ENV = {
  SWITCHYARD_MODEL_DIR: "modelDir",
  SWITCHYARD_NATS: "nats",
  SWITCHYARD_NATS_CREDS: "natsCredentials",
  SWITCHYARD_LOG_FORMAT: "logFormat",
  SWITCHYARD_LOG_LEVEL: "logLevel",
  SWITCHYARD_OTLP_ENDPOINT: "otlpEndpoint",
  SWITCHYARD_SUBJECT_PREFIX: "subjectPrefix",
  SWITCHYARD_GATEWAY_HOST: "host",
  SWITCHYARD_GATEWAY_PORT: "port",
  SWITCHYARD_METRICS_PORT: "metricsPort",
  SWITCHYARD_HTTP_PORT: "httpPort",
  SWITCHYARD_MAX_INFLIGHT: "maxInflight",
  SWITCHYARD_API_TOKENS: "apiTokens",
  SWITCHYARD_METRICS_TOKEN: "metricsToken",
  SWITCHYARD_MAX_STREAM_BUFFER_BYTES: "maxStreamBufferBytes",
  SWITCHYARD_TLS_CERT: "tlsCert",
  SWITCHYARD_TLS_KEY: "tlsKey",
  SWITCHYARD_DRAIN_TIMEOUT_MS: "drainTimeoutMs",
} as const;

export const gatewayConfigSchema = z
  .strictObject({
    modelDir: z.string().min(1).default(BUNDLED_MODEL_DIR),
    nats: z.string().min(1).default("127.0.0.1:4222"),
    /** NATS .creds file (user JWT + nkey seed); unset = none (user:password may be in the URL). */
    natsCredentials: z.string().min(1).optional(),
    /** Read by @switchyard/telemetry; declared here so that a bad value is refused by name. */
    logFormat: z.enum(LOG_FORMATS).optional(),
    logLevel: z.enum(["debug", "info", "warn", "error"]).default("info"),
    otlpEndpoint: z.url({ protocol: /^https?$/ }).optional(),
    subjectPrefix: z.string().min(1).default("sy"),
    host: z.string().min(1).default("127.0.0.1"),
    port: port.default(50051),
    metricsPort: port.default(9464),
    /** KServe v2 REST and OpenAI-style images API (Triton's HTTP port convention); "off" = none. */
    httpPort: z.union([port, z.literal("off")]).default(DEFAULT_HTTP_PORT),
    maxInflight: intInRange(1, 1_000_000).default(DEFAULT_MAX_INFLIGHT),
    /** Unread bytes a Generate stream may hold before its client is cut off (RESOURCE_EXHAUSTED). */
    maxStreamBufferBytes: intInRange(64 * 1024, 1 << 30).default(DEFAULT_MAX_STREAM_BUFFER_BYTES),
    /** Bearer token /metrics requires; unset = open (scrapers on a private network). */
    metricsToken: z.string().min(16).optional(),
    /** Comma-separated API tokens; empty = no authentication. */
    apiTokens: z.string().default(""),
    tlsCert: z.string().optional(),
    tlsKey: z.string().optional(),
    /** On SIGTERM: no new calls; streams in flight get this long to finish. */
    drainTimeoutMs: intInRange(0, 600_000).default(30_000),
  })
  .refine((c) => (c.tlsCert === undefined) === (c.tlsKey === undefined), { error: "must set both tlsCert and tlsKey, or neither", path: ["tlsKey"] });

export type GatewayConfig = z.output<typeof gatewayConfigSchema>;

export function resolveGatewayConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig & { tokens: string[]; tls?: { cert: Buffer; key: Buffer } } {
  const c = parseOrThrow(gatewayConfigSchema, readEnv(ENV, env), { what: "gateway config" });
  const tokens = String(c.apiTokens).split(",").map((t) => t.trim()).filter(Boolean);
  return { ...c, tokens, ...(c.tlsCert && c.tlsKey ? { tls: { cert: readFileSync(c.tlsCert), key: readFileSync(c.tlsKey) } } : {}) };
}
