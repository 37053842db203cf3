import { pino } from "pino";

/**
 * Structured logs (pino): JSON lines with `service` and the process's identity (worker
 * id, group) on every line, and request ids (and trace ids) where a line is about one
 * request. Human-readable, as `[service id] message`, when a terminal is attached or
 * SWITCHYARD_LOG_FORMAT=pretty (`switchyard up` starts its services so); JSON otherwise
 * (containers), or with SWITCHYARD_LOG_FORMAT=json. SWITCHYARD_LOG_LEVEL: debug, info
 * (default), warn, error.
 */
export type Logger = pino.Logger;
export const LOG_FORMATS = ["json", "pretty"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export function logFormat(env: NodeJS.ProcessEnv = process.env): LogFormat {
  const f = env.SWITCHYARD_LOG_FORMAT;
  if (f === "json" || f === "pretty") return f;
  return process.stdout.isTTY ? "pretty" : "json";
}

export function createLogger(service: string, fields: Record<string, string> = {}, options: { format?: LogFormat; level?: string } = {}): Logger {
  const format = options.format ?? logFormat();
  const level = options.level ?? process.env.SWITCHYARD_LOG_LEVEL ?? "info";
  const base = { service, ...fields };
  if (format === "json") return pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } });
  // Pretty: the line people read, `[scheduler] message` (`[worker w-0] …`), with any request id after it.
  const tag = `[${service}${fields.worker ? ` ${fields.worker}` : ""}]`;
  return pino(
    { level, base, timestamp: false },
    {
      write(line: string) {
        const o = JSON.parse(line) as Record<string, unknown>;
        const extra = ["requestId", "outcome", "totalMs", "traceId"].filter((k) => o[k] !== undefined).map((k) => `${k}=${String(o[k])}`);
        const lvl = typeof o.level === "number" && o.level >= 40 ? (o.level >= 50 ? " ERROR" : " WARN") : "";
        process.stdout.write(`${tag}${lvl} ${String(o.msg ?? "")}${extra.length ? ` (${extra.join(", ")})` : ""}\n`);
      },
    },
  );
}
