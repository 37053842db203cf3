import { type Server, createServer } from "node:http";
import { Registry, collectDefaultMetrics } from "prom-client";
import { Code, SwitchyardError } from "@switchyard/errors";

/**
 * Prometheus metrics of one process, with prom-client: a registry per service (its
 * `service` label on every series, the Node process's own figures), served on the
 * service's metrics port. Names follow Prometheus' conventions: base units (`_seconds`,
 * `_bytes`), `_total` counters; label values are bounded (never request ids).
 */
export { Counter, Gauge, Histogram, Registry } from "prom-client";

/** Request-scale latencies: 5 ms … 2 min. */
export const LATENCY_BUCKETS_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Per-layer and per-call scales: 0.1 ms … 2.5 s. */
export const FAST_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export function createServiceRegistry(service: string, labels: Record<string, string> = {}, options: { processMetrics?: boolean } = {}): Registry {
  const r = new Registry();
  r.setDefaultLabels({ service, ...labels });
  if (options.processMetrics !== false) collectDefaultMetrics({ register: r });
  return r;
}

/** A row count as a bounded label: the power of two at or above it ("1", "2", "4", … "256", "512+"). */
export function rowsBucket(rows: number): string {
  if (rows > 256) return "512+";
  let b = 1;
  while (b < rows) b *= 2;
  return String(b);
}

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Serves `registry` (and `extra()` text, if any) at /metrics; a bearer token when set. */
export async function startMetricsServer(o: { host?: string; port: number; registry: Registry; token?: string; extra?: () => string | Promise<string> }): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.url !== "/metrics") {
      res.writeHead(404).end("see /metrics\n");
      return;
    }
    if (o.token !== undefined && req.headers.authorization !== `Bearer ${o.token}`) {
      res.writeHead(401, { "www-authenticate": "Bearer" }).end("authorization: Bearer <metrics token> required\n");
      return;
    }
    void Promise.all([o.registry.metrics(), o.extra?.() ?? ""]).then(
      ([text, extra]) => res.writeHead(200, { "content-type": o.registry.contentType }).end(text + extra),
      (e: unknown) => res.writeHead(500).end(`${(e as Error).message}\n`),
    );
  });
  const host = o.host ?? "127.0.0.1";
  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", (e) => reject(new SwitchyardError(`cannot listen on ${host}:${o.port} (metrics): ${e.message}`, Code.Unavailable, { cause: e })));
    server.listen(o.port, host, () => resolve((server.address() as { port: number }).port));
  });
  return { port, close: () => new Promise<void>((r) => server.close(() => r())) };
}
