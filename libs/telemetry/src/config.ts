import { z } from "zod";
import { LOG_FORMATS } from "./log";

/**
 * The telemetry settings every role's configuration declares (read by createLogger and
 * setupTracing; declared so that a bad value is refused by name at start), and their
 * environment variables.
 */
export const TELEMETRY_ENV = {
  SWITCHYARD_LOG_FORMAT: "logFormat",
  SWITCHYARD_LOG_LEVEL: "logLevel",
  SWITCHYARD_OTLP_ENDPOINT: "otlpEndpoint",
  SWITCHYARD_METRICS_TOKEN: "metricsToken",
} as const;

export const telemetryConfigShape = {
  logFormat: z.enum(LOG_FORMATS).optional(),
  logLevel: z.enum(["debug", "info", "warn", "error"]).default("info"),
  otlpEndpoint: z.url({ protocol: /^https?$/ }).optional(),
  /** Bearer token /metrics requires; unset = open (scrapers on a private network). */
  metricsToken: z.string().min(16).optional(),
};
