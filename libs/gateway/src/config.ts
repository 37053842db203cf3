import { readFileSync } from "node:fs";
import { z } from "zod";
import { BUS_ENV, busConfigShape } from "@switchyard/bus";
import { TELEMETRY_ENV, telemetryConfigShape } from "@switchyard/telemetry";
import { intInRange, parseOrThrow, port, readEnv } from "@switchyard/config";
import { Code, SwitchyardError } from "@switchyard/errors";
import { DEFAULT_MAX_INFLIGHT, DEFAULT_MAX_STREAM_BUFFER_BYTES } from "./api";
import { DEFAULT_HTTP_PORT } from "./http";
import { DEFAULT_SUBMIT_RETRY_MS } from "./request-stream";
import { type ApiToken, apiTokensFileSchema, tokensFromFile, tokensFromList } from "./auth";
import { BUNDLED_MODEL_DIR } from "@switchyard/manifest";

export const ENV = {
  ...BUS_ENV,
  ...TELEMETRY_ENV,
  SWITCHYARD_MODEL_DIR: "modelDir",
  SWITCHYARD_GATEWAY_HOST: "host",
  SWITCHYARD_GATEWAY_PORT: "port",
  SWITCHYARD_METRICS_PORT: "metricsPort",
  SWITCHYARD_HTTP_PORT: "httpPort",
  SWITCHYARD_MAX_INFLIGHT: "maxInflight",
  SWITCHYARD_API_TOKENS: "apiTokens",
  SWITCHYARD_API_TOKENS_FILE: "apiTokensFile",
  SWITCHYARD_MAX_STREAM_BUFFER_BYTES: "maxStreamBufferBytes",
  SWITCHYARD_TLS_CERT: "tlsCert",
  SWITCHYARD_TLS_KEY: "tlsKey",
  SWITCHYARD_DRAIN_TIMEOUT_MS: "drainTimeoutMs",
  SWITCHYARD_SUBMIT_RETRY_MS: "submitRetryMs",
} as const;

export const gatewayConfigSchema = z
  .strictObject({
    ...busConfigShape,
    ...telemetryConfigShape,
    modelDir: z.string().min(1).default(BUNDLED_MODEL_DIR),
    host: z.string().min(1).default("127.0.0.1"),
    port: port.default(50051),
    /** Prometheus /metrics, /livez, /readyz; "off" = none. */
    metricsPort: z.union([port, z.literal("off")]).default(9464),
    /** KServe v2 REST and OpenAI-style images API (Triton's HTTP port convention); "off" = none. */
    httpPort: z.union([port, z.literal("off")]).default(DEFAULT_HTTP_PORT),
    maxInflight: intInRange(1, 1_000_000).default(DEFAULT_MAX_INFLIGHT),
    /** Unread bytes a Generate stream may hold before its client is cut off (RESOURCE_EXHAUSTED). */
    maxStreamBufferBytes: intInRange(64 * 1024, 1 << 30).default(DEFAULT_MAX_STREAM_BUFFER_BYTES),
    /** Comma-separated API tokens (no limits each); empty, and no file = no authentication. */
    apiTokens: z.string().default(""),
    /** JSON file of tokens with names and limits (auth.ts: apiTokensFileSchema), e.g. mounted from a Secret. */
    apiTokensFile: z.string().min(1).optional(),
    tlsCert: z.string().optional(),
    tlsKey: z.string().optional(),
    /** On SIGTERM: no new calls; streams in flight get this long to finish. */
    drainTimeoutMs: intInRange(0, 600_000).default(30_000),
    /** A submit nobody answers (a scheduler restarting, NATS away) is retried this long (never past the request's deadline). */
    submitRetryMs: intInRange(0, 600_000).default(DEFAULT_SUBMIT_RETRY_MS),
  })
  .refine((c) => (c.tlsCert === undefined) === (c.tlsKey === undefined), { error: "must set both tlsCert and tlsKey, or neither", path: ["tlsKey"] });

export type GatewayConfig = z.output<typeof gatewayConfigSchema>;

/** The configuration with its tokens (the list's and the file's) and TLS files read: what startGateway takes. */
export type ResolvedGatewayConfig = GatewayConfig & { readonly tokens: readonly ApiToken[]; readonly tls?: { readonly cert: Buffer; readonly key: Buffer } };

export function resolveGatewayConfig(env: NodeJS.ProcessEnv = process.env): ResolvedGatewayConfig {
  return withSecrets(parseOrThrow(gatewayConfigSchema, readEnv(ENV, env), { what: "gateway config" }));
}

/** Reads the tokens (SWITCHYARD_API_TOKENS, then SWITCHYARD_API_TOKENS_FILE) and the TLS files a configuration names. */
export function withSecrets(c: GatewayConfig): ResolvedGatewayConfig {
  const tokens = [...tokensFromList(String(c.apiTokens).split(",").map((t) => t.trim()).filter(Boolean)), ...(c.apiTokensFile ? readTokensFile(c.apiTokensFile) : [])];
  return { ...c, tokens, ...(c.tlsCert && c.tlsKey ? { tls: { cert: readFileSync(c.tlsCert), key: readFileSync(c.tlsKey) } } : {}) };
}

/** The tokens file: INVALID_ARGUMENT naming the file and the entry's field when it does not fit. */
function readTokensFile(path: string): ApiToken[] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new SwitchyardError(`SWITCHYARD_API_TOKENS_FILE ${path} cannot be read as JSON: ${(e as Error).message}`, Code.InvalidArgument, { field: "apiTokensFile", cause: e });
  }
  const tokens = tokensFromFile(parseOrThrow(apiTokensFileSchema, raw, { what: `API tokens file ${path}` }));
  const names = new Set<string>();
  for (const t of tokens) {
    if (names.has(t.name)) throw new SwitchyardError(`API tokens file ${path}: name ${t.name} is used twice; names must be unique`, Code.InvalidArgument, { field: "apiTokensFile" });
    names.add(t.name);
  }
  return tokens;
}
