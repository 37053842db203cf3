import { createServer, type Server as HttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { ReflectionService } from "@grpc/reflection";
import { channels, groupOf, subscribe } from "@switchyard/contract";
import { Code, SwitchyardError } from "@switchyard/errors";
import { loadContracts, reflectionDefinition } from "@switchyard/proto";
import { DEFAULT_SUBMIT_TIMEOUT_MS, type Gateway, type GatewayOptions, createGatewayApi } from "./api";
import { checkToken } from "./auth";
import { createHttpHandler } from "./http";
import { type SchedulerFigures, type WorkerTraffic, renderClusterMetrics, renderMetrics } from "./metrics";

export interface GatewayServerOptions extends GatewayOptions {
  readonly host?: string;
  /** gRPC port; 0 picks a free one. */
  readonly port?: number;
  /** KServe v2 REST + OpenAI-style images port; undefined = no HTTP API, 0 = any free port. */
  readonly httpPort?: number;
  /** Prometheus /metrics port; undefined = no metrics server, 0 = any free port. */
  /** When set, /metrics answers only `authorization: Bearer <metricsToken>` (Prometheus' `authorization` config); default open. */
  readonly metricsToken?: string;
  /** Prometheus /metrics port; undefined = no metrics server, 0 = any free port. */
  readonly metricsPort?: number;
  /** PEM files' contents for TLS; plaintext when absent. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
  /** Largest message accepted, bytes. */
  readonly maxReceiveMessageBytes?: number;
  /** Worker traffic for /metrics when workers run in this process (else from heartbeats). */
  readonly workerTraffic?: () => ReadonlyMap<string, WorkerTraffic>;
}

/** Requests are small; 4 MiB (gRPC's default) is explicit here so that it is a decision. */
export const DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = 4 * 1024 * 1024;
/** Results of 256 images with PNGs approach 2 MiB; allow headroom. */
export const DEFAULT_MAX_SEND_MESSAGE_BYTES = 64 * 1024 * 1024;

export interface GatewayServer {
  readonly address: string;
  readonly port: number;
  readonly metricsPort: number | undefined;
  /** Port of the HTTP API (KServe REST, OpenAI images), when served. */
  readonly httpPort: number | undefined;
  readonly gateway: Gateway;
  /** With `drainMs`: calls and streams in flight get that long to finish first. */
  stop(options?: { drainMs?: number }): Promise<void>;
}

/** A group's scheduler publishes figures every second; after this long without, it is gone. */
export const SCHEDULER_SILENCE_MS = 3500;

export async function startGatewayServer(o: GatewayServerOptions): Promise<GatewayServer> {
  const contracts = loadContracts();
  const gateway = createGatewayApi(o);
  const server = new grpc.Server({
    "grpc.max_receive_message_length": o.maxReceiveMessageBytes ?? DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
    "grpc.max_send_message_length": DEFAULT_MAX_SEND_MESSAGE_BYTES,
  });
  server.addService(contracts.switchyard, gateway.implementation);
  server.addService(contracts.inference, gateway.inference);
  const health = new HealthImplementation({ "": "SERVING", "switchyard.v1.Switchyard": "SERVING", "inference.GRPCInferenceService": "SERVING" });
  health.addToServer(server);
  new ReflectionService(reflectionDefinition(), { services: ["switchyard.v1.Switchyard", "inference.GRPCInferenceService", "grpc.health.v1.Health"] }).addToServer(server);
  const host = o.host ?? "127.0.0.1";
  const creds = o.tls ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: o.tls.cert, private_key: o.tls.key }]) : grpc.ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${o.port ?? 0}`, creds, (err, p) => (err ? reject(new SwitchyardError(`cannot listen on ${host}:${o.port}: ${err.message}`, Code.Unavailable, { cause: err })) : resolve(p))),
  );
  // Cluster figures arrive over the bus: each group's scheduler publishes its own,
  // workers carry traffic totals in their heartbeats.
  const schedulers = new Map<string, { figures: SchedulerFigures; atMs: number }>();
  const heard = new Map<string, WorkerTraffic & { group: string }>();
  const ch = channels(o.subjects);
  const subs = [
    subscribe(o.bus, ch.anySchedulerMetrics, (figures, subject) => void schedulers.set(groupOf(subject), { figures, atMs: Date.now() })),
    subscribe(o.bus, ch.anyHeartbeat, (hb, subject) => {
      if (hb.traffic) heard.set(hb.workerId, { ...hb.traffic, group: groupOf(subject) });
    }),
    subscribe(o.bus, ch.anyLeave, (m) => void heard.delete(m.workerId)),
  ];
  // Ready (the API services' health) while some group's scheduler was heard lately: a
  // gateway that reaches no scheduler cannot serve, so a load balancer should skip it.
  let stopping = false;
  const setReady = (ok: boolean) => {
    for (const name of ["switchyard.v1.Switchyard", "inference.GRPCInferenceService"]) health.setStatus(name, ok ? "SERVING" : "NOT_SERVING");
  };
  const readiness = setInterval(() => {
    const now = Date.now();
    for (const [g, f] of schedulers) if (now - f.atMs > SCHEDULER_SILENCE_MS) schedulers.delete(g);
    setReady(!stopping && schedulers.size > 0);
  }, 500);
  readiness.unref?.();
  setReady(false);
  let http: HttpServer | undefined;
  let metricsPort: number | undefined;
  if (o.metricsPort !== undefined) {
    http = createServer((req, res) => {
      // Plain-HTTP probes for when the gRPC port is TLS (Kubernetes' gRPC probes cannot
      // speak TLS): /livez while the process answers, /readyz as the gRPC readiness.
      if (req.url === "/livez" || req.url === "/readyz") {
        const ok = req.url === "/livez" || (!stopping && schedulers.size > 0);
        res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" }).end(ok ? "ok\n" : stopping ? "draining\n" : "no scheduler heard\n");
        return;
      }
      if (req.url !== "/metrics") {
        res.writeHead(404).end("see /metrics, /livez, /readyz\n");
        return;
      }
      if (o.metricsToken !== undefined) {
        try {
          checkToken(req.headers.authorization, [o.metricsToken]);
        } catch (e) {
          res.writeHead(401, { "www-authenticate": "Bearer" }).end(`${SwitchyardError.from(e).message}\n`);
          return;
        }
      }
      // The gateway's own series (hand-kept counters, then prom-client's histograms), then the cluster's second-hand figures.
      void gateway.metrics.registry.metrics().then((own) => {
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
        res.end(renderMetrics(gateway.metrics) + own + renderClusterMetrics(new Map([...schedulers].map(([g, f]) => [g, f.figures])), o.workerTraffic?.() ?? heard));
      });
    });
    metricsPort = await new Promise<number>((resolve, reject) => {
      http!.once("error", reject);
      http!.listen(o.metricsPort, host, () => resolve((http!.address() as { port: number }).port));
    });
  }
  let api: HttpServer | undefined;
  let httpPort: number | undefined;
  if (o.httpPort !== undefined) {
    const handler = createHttpHandler({ gateway, manifest: o.manifest, bus: o.bus, subjects: o.subjects, submitTimeoutMs: o.submitTimeoutMs ?? DEFAULT_SUBMIT_TIMEOUT_MS, ...(o.watch ? { watch: o.watch } : {}) });
    // The HTTP API is served over TLS with the same certificate as gRPC when one is set.
    api = o.tls ? createHttpsServer({ cert: o.tls.cert, key: o.tls.key }, handler) : createServer(handler);
    httpPort = await new Promise<number>((resolve, reject) => {
      api!.once("error", (e) => reject(new SwitchyardError(`cannot listen on ${host}:${o.httpPort} (HTTP API): ${e.message}`, Code.Unavailable, { cause: e })));
      api!.listen(o.httpPort, host, () => resolve((api!.address() as { port: number }).port));
    });
  }
  return {
    address: `${host}:${port}`,
    port,
    metricsPort,
    httpPort,
    gateway,
    async stop(options: { drainMs?: number } = {}) {
      // Drain: not ready, no new calls or connections; calls and streams in flight finish
      // (up to drainMs), then whatever is left is cut.
      stopping = true;
      setReady(false);
      clearInterval(readiness);
      const drainMs = options.drainMs ?? 0;
      const grpcDone = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      const apiDone = api ? new Promise<void>((r) => api!.close(() => r())) : Promise.resolve();
      api?.closeIdleConnections();
      const idle = setInterval(() => api?.closeIdleConnections(), 100);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all([grpcDone, apiDone]), new Promise((r) => (timer = setTimeout(r, drainMs)))]);
      clearTimeout(timer);
      clearInterval(idle);
      server.forceShutdown();
      api?.closeAllConnections();
      await apiDone;
      for (const s of subs) s.unsubscribe();
      health.setStatus("", "NOT_SERVING");
      if (http) await new Promise<void>((r) => http!.close(() => r()));
    },
  };
}
