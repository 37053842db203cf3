import type { EventEmitter } from "node:events";
import type { Http2Session } from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { ReflectionService } from "@grpc/reflection";
import { Code, SwitchyardError } from "@switchyard/errors";
import { SpanKind, extractContext, inSpan, injectContext } from "@switchyard/telemetry";
import {
  type ExchangeRequestMsg, type ExchangeResponseMsg, type PeerClient, type ReuseResultMsg, type ReuseSnapshotMsg, type ReuseStateMsg, type TickRequestMsg, type TickResponseMsg,
  clientFor, fromGrpcError, loadContracts, reflectionDefinition, toGrpcStatus, withoutPrevious,
} from "@switchyard/proto";
import { bytesOf, viewAs } from "@switchyard/tensor";
import { decodeExchangeRequest, decodeExchangeResponse, encodeExchangeRequest, encodeExchangeResponse } from "./exchange-codec";
import { CLUSTER_SECRET_METADATA, checkClusterSecret } from "./cluster-secret";
import { createExchangeClient } from "./exchange-tcp";

/**
 * The worker data plane over gRPC: raw tensor bytes in `bytes` fields (views on the
 * way out; one aligned copy at most on the way in).
 */
export interface WorkerHandler {
  runTick(req: TickRequestMsg): Promise<TickResponseMsg>;
  exchange(req: ExchangeRequestMsg): Promise<ExchangeResponseMsg>;
  setExperts(globalIds: readonly number[]): Promise<{ loaded: number; dropped: number }>;
  stats(): unknown;
}

/** Rows of one layer for a large tick: 64 images × 49 tokens × 128 floats ≈ 1.6 MiB; allow headroom. */
export const DATA_PLANE_MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

const buf = (a: Float32Array | Int32Array | Int16Array) => Buffer.from(bytesOf(a).buffer, a.byteOffset, a.byteLength);

interface WireTick {
  tick: number;
  items: { requestId: string; imageIndex: number; x: Buffer; t: number; label: number; guidance: number; reuseThreshold?: number; reuseState?: WireReuseState | null; reuseStateTick?: number | string }[];
  homes: string[];
  planVersion: number;
  owners: string[];
  predicted?: Buffer;
  replicas?: { expert: number; workers: string[] }[];
  microBatches?: number;
  reuseRelease?: string[];
}

interface WireReuseSnapshot {
  t: number;
  probe: Buffer;
  residual: Buffer;
}

interface WireReuseState extends WireReuseSnapshot {
  rows: number;
  previous?: WireReuseSnapshot | null;
}

const decodeSnapshot = (w: WireReuseSnapshot): ReuseSnapshotMsg => ({ t: w.t, probe: viewAs("float32", w.probe), residual: viewAs("float32", w.residual) });
const encodeSnapshot = (s: ReuseSnapshotMsg): WireReuseSnapshot => ({ t: s.t, probe: buf(s.probe), residual: buf(s.residual) });
const decodeReuseState = (w: WireReuseState): ReuseStateMsg => ({ rows: w.rows, ...decodeSnapshot(w), ...(w.previous ? { previous: decodeSnapshot(w.previous) } : {}) });
const encodeReuseState = (s: ReuseStateMsg): WireReuseState => ({ rows: s.rows, ...encodeSnapshot(s), ...(s.previous ? { previous: encodeSnapshot(s.previous) } : {}) });

interface WireReuseResult {
  item: number;
  reused: boolean;
  distance: number;
  state?: WireReuseState | null;
  previousIsInput?: boolean;
}

/** A result's new state goes without its previous evaluation when that is the state the item was sent (the scheduler has it). */
const encodeReuseResult = (o: ReuseResultMsg): WireReuseResult => ({
  item: o.item, reused: o.reused, distance: o.distance,
  ...(o.state ? { state: encodeReuseState(o.previousIsInput ? withoutPrevious(o.state) : o.state) } : {}),
  ...(o.previousIsInput ? { previousIsInput: true } : {}),
});
const decodeReuseResult = (o: WireReuseResult): ReuseResultMsg => ({
  item: o.item, reused: o.reused, distance: o.distance, ...(o.state ? { state: decodeReuseState(o.state) } : {}), ...(o.previousIsInput ? { previousIsInput: true } : {}),
});

function expandReplicas(list: { expert: number; workers: string[] }[], n: number): string[][] {
  const out: string[][] = Array.from({ length: n }, () => []);
  for (const r of list) if (r.expert < n) out[r.expert] = [...r.workers];
  return out;
}

function decodeTick(w: WireTick): TickRequestMsg {
  return {
    tick: Number(w.tick), homes: w.homes, planVersion: Number(w.planVersion), owners: w.owners,
    ...(w.predicted && w.predicted.length > 0 ? { predicted: viewAs("int32", w.predicted) } : {}),
    ...(w.replicas && w.replicas.length > 0 ? { replicas: expandReplicas(w.replicas, w.owners.length) } : {}),
    ...(w.microBatches && w.microBatches > 1 ? { microBatches: w.microBatches } : {}),
    ...(w.reuseRelease && w.reuseRelease.length > 0 ? { reuseRelease: w.reuseRelease } : {}),
    items: w.items.map((it) => ({
      requestId: it.requestId, imageIndex: it.imageIndex, x: viewAs("float32", it.x), t: it.t, label: it.label, guidance: it.guidance,
      ...(it.reuseThreshold
        ? { reuse: { threshold: it.reuseThreshold, ...(it.reuseState ? { state: decodeReuseState(it.reuseState) } : {}), ...(Number(it.reuseStateTick ?? 0) > 0 ? { stateTick: Number(it.reuseStateTick) } : {}) } }
        : {}),
    })),
  };
}
function encodeTick(r: TickRequestMsg): WireTick {
  return {
    tick: r.tick, homes: [...r.homes], planVersion: r.planVersion, owners: [...r.owners], items: r.items.map(({ reuse, ...it }) => ({
      ...it, x: buf(it.x),
      ...(reuse ? { reuseThreshold: reuse.threshold, ...(reuse.state ? { reuseState: encodeReuseState(reuse.state) } : {}), ...(reuse.stateTick ? { reuseStateTick: reuse.stateTick } : {}) } : {}),
    })),
    ...(r.predicted ? { predicted: buf(r.predicted) } : {}),
    ...(r.replicas ? { replicas: r.replicas.flatMap((ws, expert) => (ws.length ? [{ expert, workers: [...ws] }] : [])) } : {}),
    ...(r.microBatches ? { microBatches: r.microBatches } : {}),
    ...(r.reuseRelease && r.reuseRelease.length > 0 ? { reuseRelease: [...r.reuseRelease] } : {}),
  };
}
/**
 * The worker service with the hand-written codec on Exchange (the data plane's hot
 * path); the other methods keep proto-loader's.
 */
function workerService(side: "client" | "server"): grpc.ServiceDefinition {
  const base = loadContracts().worker;
  const exchange = base.Exchange as grpc.MethodDefinition<ExchangeRequestMsg, ExchangeResponseMsg>;
  // A server encodes answers into one reused buffer: grpc-js serializes a response and
  // copies it into its own framed buffer in one synchronous step (server-interceptors
  // sendMessage → serializeMessage), so nothing else is written to it meanwhile. That
  // spares a worker ~20 MB of new external memory per 128-image tick (V8 runs a full
  // mark-compact every 64 MB). Not on the client side: a request may wait, serialized,
  // until its channel is ready.
  let scratch = Buffer.allocUnsafeSlow(0);
  const reuse = (n: number) => (scratch.length >= n ? scratch : (scratch = Buffer.allocUnsafeSlow(Math.ceil(n * 1.25))));
  return {
    ...base,
    Exchange: {
      ...exchange,
      requestSerialize: (r: ExchangeRequestMsg) => encodeExchangeRequest(r),
      requestDeserialize: decodeExchangeRequest,
      responseSerialize: side === "server" ? (r: ExchangeResponseMsg) => encodeExchangeResponse(r, { buffer: reuse }) : (r: ExchangeResponseMsg) => encodeExchangeResponse(r),
      responseDeserialize: decodeExchangeResponse,
    },
  };
}

/**
 * A unary handler that first checks the call's cluster secret (when the worker has one). With `span`, it runs in a server span that continues the caller's
 * trace (W3C traceparent in the call's metadata): a worker's RunTick and Exchange, and
 * every call it makes meanwhile, join the scheduler's tick.
 */
function authenticated<Req, Res>(secret: string | undefined, fn: (req: Req) => Promise<Res>, span?: { name: string; attributes?: (req: Req) => Record<string, number | string> }) {
  return (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => {
    try {
      checkClusterSecret(call.metadata.get(CLUSTER_SECRET_METADATA)[0], secret);
    } catch (e) {
      cb(toGrpcStatus(e));
      return;
    }
    const run = span
      ? inSpan(span.name, { kind: SpanKind.SERVER, parent: extractContext(call.metadata.getMap()), ...(span.attributes ? { attributes: span.attributes(call.request) } : {}) }, () => fn(call.request))
      : fn(call.request);
    run.then((r) => cb(null, r), (e) => cb(toGrpcStatus(e)));
  };
}

export interface WorkerServer {
  readonly port: number;
  readonly address: string;
  /** grpc.health.v1 status (readiness probes): SERVING once the worker is in the plan in force. */
  setServing(ok: boolean): void;
  stop(): Promise<void>;
}

/**
 * HTTP/2 flow-control window of data-plane connections. At the default 64 KiB a sender
 * stops every 64 KiB until the receiver's event loop (busy with a layer's compute)
 * acknowledges; a layer's exchange is ~1-2 MiB per peer.
 */
export const DATA_PLANE_FLOW_CONTROL_WINDOW = 32 * 1024 * 1024;

/**
 * grpc-js sets no receive window on servers (grpc-node PR #3058 is open): raise the
 * per-stream window in the settings its HTTP/2 servers are created with, and the
 * connection window of every session. Relies on grpc-js internals; without them the
 * defaults stay (slower, not wrong).
 */
function widenServerWindows(server: grpc.Server): void {
  const internals = server as unknown as { commonServerOptions?: { settings?: Record<string, unknown> } };
  if (internals.commonServerOptions) {
    internals.commonServerOptions.settings = { ...(internals.commonServerOptions.settings ?? {}), initialWindowSize: DATA_PLANE_FLOW_CONTROL_WINDOW };
  }
}
function widenSessionWindows(server: grpc.Server): void {
  const internals = server as unknown as { http2Servers?: Map<EventEmitter, unknown> };
  for (const h of internals.http2Servers?.keys() ?? []) {
    h.on("session", (session: Http2Session) => {
      try {
        session.setLocalWindowSize(DATA_PLANE_FLOW_CONTROL_WINDOW);
      } catch {
        // an older Node without setLocalWindowSize: keep the default window
      }
    });
  }
}

/** `clusterSecret`: calls without it are refused UNAUTHENTICATED (cluster-secret.ts). */
export async function startWorkerServer(handler: WorkerHandler, options: { host?: string; port?: number; clusterSecret?: string } = {}): Promise<WorkerServer> {
  const unary = <Req, Res>(fn: (req: Req) => Promise<Res>, span?: { name: string; attributes?: (req: Req) => Record<string, number | string> }) => authenticated(options.clusterSecret, fn, span);
  const server = new grpc.Server({ "grpc.max_receive_message_length": DATA_PLANE_MAX_MESSAGE_BYTES, "grpc.max_send_message_length": DATA_PLANE_MAX_MESSAGE_BYTES });
  widenServerWindows(server);
  server.addService(workerService("server"), {
    RunTick: unary(async (w: WireTick) => {
      const r = await handler.runTick(decodeTick(w));
      return {
        velocities: buf(r.velocities), routing: buf(r.routing), routingWeights: buf(r.routingWeights), denseMs: r.denseMs, expertMs: r.expertMs,
        ...(r.expertsUsed ? { expertsUsed: Buffer.from(r.expertsUsed.buffer, r.expertsUsed.byteOffset, r.expertsUsed.byteLength) } : {}),
        ...(r.reuse ? { reuse: r.reuse.map(encodeReuseResult) } : {}),
        ...(r.deferred && r.deferred.length > 0 ? { deferred: [...r.deferred] } : {}),
      };
    }, { name: "worker.RunTick", attributes: (w) => ({ "switchyard.tick": Number((w as { tick?: number }).tick ?? 0), "switchyard.images": ((w as { items?: unknown[] }).items ?? []).length }) }),
    Exchange: unary((r: ExchangeRequestMsg) => handler.exchange(r), { name: "worker.Exchange", attributes: (r) => ({ "switchyard.tick": r.tick, "switchyard.layer": r.layer, "switchyard.from": r.from, "switchyard.rows": r.rows }) }),
    SetExperts: unary(async (w: { experts: number[] }) => handler.setExperts(w.experts)),
    Stats: unary(async () => handler.stats()),
  });
  const health = new HealthImplementation({ "": "SERVING", "switchyard.worker.v1.Worker": "SERVING" });
  health.addToServer(server);
  new ReflectionService(reflectionDefinition(), { services: ["switchyard.worker.v1.Worker", "grpc.health.v1.Health"] }).addToServer(server);
  const host = options.host ?? "127.0.0.1";
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${options.port ?? 0}`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(new SwitchyardError(`worker cannot listen on ${host}:${options.port}: ${e.message}`, Code.Unavailable)) : resolve(p))),
  );
  widenSessionWindows(server);
  return {
    port,
    address: `${host}:${port}`,
    // "" stays SERVING while the process answers (liveness); the service name is readiness.
    setServing: (ok) => health.setStatus("switchyard.worker.v1.Worker", ok ? "SERVING" : "NOT_SERVING"),
    async stop() {
      await new Promise<void>((r) => server.tryShutdown(() => r()));
      server.forceShutdown();
    },
  };
}

/** gRPC clients to workers by id; addresses are learnt from heartbeats. */
export interface WorkerClients extends PeerClient {
  /**
   * `exchangeAddress`: the worker's TCP exchange (exchange-tcp.ts), which its Exchange
   * calls then take; without one they go over gRPC.
   */
  setAddress(worker: string, address: string, exchangeAddress?: string): void;
  remove(worker: string): void;
  runTick(worker: string, req: TickRequestMsg, timeoutMs?: number): Promise<TickResponseMsg>;
  setExperts(worker: string, globalIds: readonly number[]): Promise<{ loaded: number; dropped: number }>;
  stats(worker: string): Promise<unknown>;
  close(): void;
}

/** A tick of 64 images takes well under this even on 2 CPU cores. */
export const DEFAULT_TICK_TIMEOUT_MS = 60_000;

/**
 * `clusterSecret`: sent with every call (the workers' SWITCHYARD_CLUSTER_SECRET);
 * `from`: the calling worker's id; `tcpExchange: false`: Exchange always over gRPC.
 */
export function createWorkerClients(options: { clusterSecret?: string; from?: string; tcpExchange?: boolean } = {}): WorkerClients {
  const Ctor = clientFor(workerService("client"), "Worker");
  const clients = new Map<string, { address: string; exchange?: string; c: grpc.Client & Record<string, (...a: unknown[]) => unknown> }>();
  const tcp = options.tcpExchange === false ? undefined : createExchangeClient({ ...(options.from ? { from: options.from } : {}), ...(options.clusterSecret ? { clusterSecret: options.clusterSecret } : {}) });
  const get = (w: string) => {
    const c = clients.get(w);
    if (!c) throw new SwitchyardError(`worker ${w} has no known address`, Code.Unavailable);
    return c.c;
  };
  const call = <Res>(w: string, method: string, req: unknown, timeoutMs?: number) =>
    new Promise<Res>((resolve, reject) => {
      let c;
      try {
        c = get(w);
      } catch (e) {
        reject(e);
        return;
      }
      const opts: grpc.CallOptions = timeoutMs ? { deadline: Date.now() + timeoutMs } : {};
      // The caller's trace continues in the worker (nothing is added when tracing is off).
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(injectContext())) md.set(k, v);
      if (options.clusterSecret) md.set(CLUSTER_SECRET_METADATA, options.clusterSecret);
      (c[method] as (r: unknown, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Res) => void) => void)(req, md, opts, (e, r) =>
        e ? reject(fromGrpcError(e)) : resolve(r as Res),
      );
    });
  return {
    setAddress(worker, address, exchangeAddress) {
      const cur = clients.get(worker);
      if (cur?.address === address && cur.exchange === exchangeAddress) return;
      if (cur?.exchange && cur.exchange !== exchangeAddress) tcp?.drop(cur.exchange);
      if (cur?.address === address) {
        const { exchange: _old, ...rest } = cur;
        clients.set(worker, { ...rest, ...(exchangeAddress ? { exchange: exchangeAddress } : {}) });
        return;
      }
      cur?.c.close();
      clients.set(worker, {
        address,
        ...(exchangeAddress ? { exchange: exchangeAddress } : {}),
        c: new Ctor(address, grpc.credentials.createInsecure(), {
          "grpc.max_receive_message_length": DATA_PLANE_MAX_MESSAGE_BYTES,
          "grpc.max_send_message_length": DATA_PLANE_MAX_MESSAGE_BYTES,
          "grpc-node.flow_control_window": DATA_PLANE_FLOW_CONTROL_WINDOW,
        }) as never,
      });
    },
    remove(worker) {
      const cur = clients.get(worker);
      cur?.c.close();
      if (cur?.exchange) tcp?.drop(cur.exchange);
      clients.delete(worker);
    },
    async runTick(worker, req, timeoutMs = DEFAULT_TICK_TIMEOUT_MS) {
      const r = await call<{ velocities: Buffer; routing: Buffer; routingWeights: Buffer; expertsUsed?: Buffer; reuse?: WireReuseResult[]; deferred?: number[]; denseMs: number; expertMs: number }>(worker, "RunTick", encodeTick(req), timeoutMs);
      return {
        velocities: viewAs("float32", r.velocities), routing: viewAs("int16", r.routing), routingWeights: viewAs("float32", r.routingWeights),
        ...(r.expertsUsed && r.expertsUsed.length > 0 ? { expertsUsed: new Uint8Array(r.expertsUsed.buffer, r.expertsUsed.byteOffset, r.expertsUsed.byteLength) } : {}),
        ...(r.reuse && r.reuse.length > 0 ? { reuse: r.reuse.map(decodeReuseResult) } : {}),
        ...(r.deferred && r.deferred.length > 0 ? { deferred: r.deferred } : {}),
        denseMs: r.denseMs, expertMs: r.expertMs,
      };
    },
    async exchange(peer, req) {
      const via = tcp && clients.get(peer)?.exchange;
      if (via) return tcp.exchange(peer, via, req, DEFAULT_TICK_TIMEOUT_MS);
      return call<ExchangeResponseMsg>(peer, "Exchange", req, DEFAULT_TICK_TIMEOUT_MS);
    },
    setExperts: (worker, ids) => call(worker, "SetExperts", { experts: [...ids] }, DEFAULT_TICK_TIMEOUT_MS),
    stats: (worker) => call(worker, "Stats", {}, 5000),
    close() {
      for (const { c } of clients.values()) c.close();
      clients.clear();
      tcp?.close();
    },
  };
}

/**
 * grpc.health.v1 and reflection for a service that serves nothing else over gRPC (the
 * scheduler talks NATS): probes and grpcurl work the same on every service.
 */
export async function startHealthServer(options: { host?: string; port?: number; service: string; serving?: boolean }): Promise<{ port: number; setServing(ok: boolean): void; stop(): Promise<void> }> {
  const server = new grpc.Server();
  const health = new HealthImplementation({ "": "SERVING", [options.service]: options.serving === false ? "NOT_SERVING" : "SERVING" });
  health.addToServer(server);
  new ReflectionService(reflectionDefinition(), { services: ["grpc.health.v1.Health"] }).addToServer(server);
  const host = options.host ?? "127.0.0.1";
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${options.port ?? 0}`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(new SwitchyardError(`cannot listen on ${host}:${options.port}: ${e.message}`, Code.Unavailable)) : resolve(p))),
  );
  return {
    port,
    // "" stays SERVING while the process answers (liveness); the service name is readiness.
    setServing: (ok) => health.setStatus(options.service, ok ? "SERVING" : "NOT_SERVING"),
    async stop() {
      await new Promise<void>((r) => server.tryShutdown(() => r()));
    },
  };
}
