import * as net from "node:net";
import { Code, SwitchyardError } from "@switchyard/errors";
import type { ExchangeRequestMsg, ExchangeResponseMsg } from "@switchyard/proto";
import { SpanKind, extractContext, inSpan, injectContext } from "@switchyard/telemetry";
import { checkClusterSecret } from "./cluster-secret";
import { decodeExchangeRequest, decodeExchangeResponse, encodeExchangeRequest, encodeExchangeResponse } from "./exchange-codec";

/**
 * The per-layer row exchange over plain TCP: the same protobuf messages as the gRPC
 * Exchange (exchange-codec.ts), in length-prefixed frames on one long-lived connection
 * per pair of workers.
 *
 * Why not gRPC: measured on this repository's machine (2 vCPUs, loopback, 0.6 MB each
 * way, an idle server), a grpc-js unary Exchange took 2.3-2.5 ms and 2.5 ms of the
 * caller's CPU; Node's own http2 0.84 ms / 0.81 ms; a TCP socket 0.58 ms / 0.51 ms.
 * grpc-js gives every message to the application as HTTP/2 frame chunks, a
 * concatenation and a framed copy, and those fresh buffers are external memory that V8
 * answers with full mark-compacts of the worker's heap. Here a message is read
 * straight into one buffer of its own (on the connection the caller dialled: socket
 * `onread`) or copied once out of the socket's chunks (on the side that accepted it),
 * and sent from reused buffers. gRPC's Exchange stays (grpcurl, mixed versions,
 * SWITCHYARD_EXCHANGE_TRANSPORT=grpc).
 *
 * Frame: a 12-byte header — u32 LE body length, u8 kind, 3 zero bytes, u32 LE call id —
 * then the body. The dialler's first frame is a HELLO (JSON: protocol, the worker's id,
 * the cluster secret when there is one), answered with a HELLO, or an ERROR and the
 * connection closed. A REQUEST body is a u32 LE length m, m bytes of trace context
 * (JSON `{traceparent, tracestate}`, m = 0 when tracing is off), zero padding to a
 * multiple of 4, then the ExchangeRequest; a RESPONSE body is the ExchangeResponse; an
 * ERROR body is JSON `{code, message, field?}` (codes are gRPC's). Tensors are 4-byte aligned
 * for a body at offset 0, so the receiver views them in place.
 */
export const EXCHANGE_PROTOCOL = "switchyard-exchange/1";

const HEADER = 12;
const KIND = { hello: 1, request: 2, response: 3, error: 4 } as const;

/** Bodies above this are refused (the connection closes): the gRPC data plane's limit. */
export const EXCHANGE_MAX_FRAME_BYTES = 256 * 1024 * 1024;

function writeHeader(frame: Buffer, bodyBytes: number, kind: number, id: number): void {
  frame.writeUInt32LE(bodyBytes, 0);
  frame[4] = kind;
  frame[5] = frame[6] = frame[7] = 0;
  frame.writeUInt32LE(id, 8);
}

function jsonFrame(kind: number, id: number, value: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(value), "utf8");
  const frame = Buffer.allocUnsafe(HEADER + body.length);
  writeHeader(frame, body.length, kind, id);
  body.copy(frame, HEADER);
  return frame;
}

const errorFrame = (id: number, e: unknown) => {
  const err = SwitchyardError.from(e, Code.Internal);
  return jsonFrame(KIND.error, id, { code: err.code, message: err.rawMessage, ...(err.field ? { field: err.field } : {}) });
};

function parseError(body: Buffer, what: string): SwitchyardError {
  try {
    const { code, message, field } = JSON.parse(body.toString("utf8")) as { code?: unknown; message?: unknown; field?: unknown };
    const c = typeof code === "number" && code >= 1 && code <= 16 ? (code as Code) : Code.Unknown;
    return new SwitchyardError(typeof message === "string" ? message : `${what} failed`, c, typeof field === "string" ? { field } : {});
  } catch {
    return new SwitchyardError(`${what} failed with an unreadable error`, Code.Unknown);
  }
}

/**
 * Frames out of a byte stream. `target()` is where the next bytes go (the rest of the
 * header, or of the body's own buffer, allocated at its exact size and offset 0) and
 * `advance(n)` says n bytes landed there; `push` copies a chunk through the same steps.
 */
export class FrameReader {
  private readonly head = Buffer.alloc(HEADER);
  private have = 0;
  private body: Buffer | undefined;
  private dead = false;

  constructor(
    private readonly onFrame: (kind: number, id: number, body: Buffer) => void,
    private readonly onBad: (why: string) => void,
    private readonly maxBody = EXCHANGE_MAX_FRAME_BYTES,
  ) {}

  target(): Buffer {
    return this.body ? this.body.subarray(this.have) : this.head.subarray(this.have);
  }

  advance(n: number): void {
    if (this.dead) return;
    this.have += n;
    if (!this.body) {
      if (this.have < HEADER) return;
      const len = this.head.readUInt32LE(0);
      if (len > this.maxBody) {
        this.dead = true;
        this.onBad(`a frame of ${len} bytes is over the limit of ${this.maxBody}`);
        return;
      }
      this.body = Buffer.allocUnsafeSlow(len);
      this.have = 0;
      if (len > 0) return;
    } else if (this.have < this.body.length) return;
    const body = this.body;
    this.body = undefined;
    this.have = 0;
    this.onFrame(this.head[4]!, this.head.readUInt32LE(8), body);
  }

  push(chunk: Uint8Array): void {
    for (let off = 0; off < chunk.length && !this.dead; ) {
      const t = this.target();
      const n = Math.min(t.length, chunk.length - off);
      t.set(chunk.subarray(off, off + n));
      off += n;
      this.advance(n);
    }
  }
}

/**
 * Send buffers handed back when the socket has written them (a write may wait in the
 * socket's queue): a layer's messages reuse the same few buffers instead of allocating.
 */
class SendBuffers {
  private readonly free: Buffer[] = [];
  constructor(private readonly max = 8) {}
  take(n: number): Buffer {
    const i = this.free.findIndex((b) => b.length >= n);
    return i >= 0 ? this.free.splice(i, 1)[0]! : Buffer.allocUnsafeSlow(Math.ceil(n * 1.25));
  }
  give(b: Buffer): void {
    if (this.free.length < this.max) this.free.push(b);
  }
}

function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(":");
  const port = Number(address.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw new SwitchyardError(`exchange address ${JSON.stringify(address)} must be host:port`, Code.InvalidArgument);
  return { host: address.slice(0, i).replace(/^\[(.*)\]$/, "$1"), port };
}

export interface ExchangeServer {
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * Serves `exchange` over TCP on host:port (0: any free port). With `clusterSecret`, a
 * connection whose HELLO lacks it is answered UNAUTHENTICATED and closed.
 */
export async function startExchangeServer(
  exchange: (req: ExchangeRequestMsg) => Promise<ExchangeResponseMsg>,
  options: { host?: string; port?: number; clusterSecret?: string; log?: (msg: string) => void } = {},
): Promise<ExchangeServer> {
  const sockets = new Set<net.Socket>();
  const buffers = new SendBuffers();
  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined); // 'close' follows
    let hello: string | undefined;
    const refuse = (id: number, e: unknown) => {
      socket.end(errorFrame(id, e));
      socket.destroySoon();
    };
    const answer = (id: number, res: ExchangeResponseMsg) => {
      let frame: Buffer | undefined;
      const body = encodeExchangeResponse(res, { at: 0, buffer: (n) => (frame = buffers.take(HEADER + n)).subarray(HEADER, HEADER + n) });
      writeHeader(frame!, body.length, KIND.response, id);
      const f = frame!;
      socket.write(f.subarray(0, HEADER + body.length), () => buffers.give(f));
    };
    const reader = new FrameReader(
      (kind, id, body) => {
        if (hello === undefined) {
          if (kind !== KIND.hello) return refuse(id, new SwitchyardError(`exchange connection must start with a hello frame, got kind ${kind}`, Code.InvalidArgument));
          let h: { protocol?: unknown; from?: unknown; secret?: unknown };
          try {
            h = JSON.parse(body.toString("utf8")) as typeof h;
          } catch {
            return refuse(id, new SwitchyardError("exchange hello is not JSON", Code.InvalidArgument));
          }
          if (h.protocol !== EXCHANGE_PROTOCOL) return refuse(id, new SwitchyardError(`exchange hello speaks ${JSON.stringify(h.protocol)}; this worker speaks ${EXCHANGE_PROTOCOL}`, Code.Unimplemented));
          try {
            checkClusterSecret(h.secret, options.clusterSecret, "the exchange hello's secret");
          } catch (e) {
            options.log?.(`exchange connection from ${socket.remoteAddress}:${socket.remotePort} refused: ${(e as Error).message}`);
            return refuse(id, e);
          }
          hello = typeof h.from === "string" ? h.from : "";
          socket.write(jsonFrame(KIND.hello, id, { protocol: EXCHANGE_PROTOCOL }));
          return;
        }
        if (kind !== KIND.request) return refuse(id, new SwitchyardError(`exchange frame of kind ${kind} where a request was expected`, Code.InvalidArgument));
        let req: ExchangeRequestMsg;
        let carrier: Record<string, unknown> = {};
        try {
          const m = body.length >= 4 ? body.readUInt32LE(0) : -1;
          if (m < 0 || 4 + m > body.length) throw new SwitchyardError(`exchange request of ${body.length} bytes has no room for its ${m}-byte trace context`, Code.InvalidArgument);
          if (m > 0) carrier = JSON.parse(body.toString("utf8", 4, 4 + m)) as Record<string, unknown>;
          req = decodeExchangeRequest(body.subarray(4 + m + ((4 - (m % 4)) % 4)));
        } catch (e) {
          socket.write(errorFrame(id, SwitchyardError.from(e, Code.InvalidArgument)));
          return;
        }
        inSpan("worker.Exchange", { kind: SpanKind.SERVER, parent: extractContext(carrier), attributes: { "switchyard.tick": req.tick, "switchyard.layer": req.layer, "switchyard.from": req.from, "switchyard.rows": req.rows } }, () => exchange(req)).then(
          (res) => {
            if (!socket.destroyed) answer(id, res);
          },
          (e) => {
            if (!socket.destroyed) socket.write(errorFrame(id, e));
          },
        );
      },
      (why) => {
        options.log?.(`exchange connection from ${socket.remoteAddress}:${socket.remotePort} closed: ${why}`);
        refuse(0, new SwitchyardError(why, Code.ResourceExhausted));
      },
    );
    socket.on("data", (chunk: Buffer) => reader.push(chunk));
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e) => reject(new SwitchyardError(`exchange cannot listen on ${host}:${options.port ?? 0}: ${e.message}`, Code.Unavailable)));
    server.listen(options.port ?? 0, host, () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    async stop() {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

interface Pending {
  readonly resolve: (r: ExchangeResponseMsg) => void;
  readonly reject: (e: unknown) => void;
  readonly timer: NodeJS.Timeout;
}

interface Connection {
  readonly socket: net.Socket;
  readonly pending: Map<number, Pending>;
}

export interface ExchangeClient {
  /** Sends `req` to the worker `peer` listening at `address` (one connection per address, dialled on first use). */
  exchange(peer: string, address: string, req: ExchangeRequestMsg, timeoutMs: number): Promise<ExchangeResponseMsg>;
  /** Closes the connection to `address` (its calls fail UNAVAILABLE). */
  drop(address: string): void;
  close(): void;
}

/** `from`: this worker's id (said in the hello); `clusterSecret`: the workers' SWITCHYARD_CLUSTER_SECRET. */
export function createExchangeClient(options: { from?: string; clusterSecret?: string } = {}): ExchangeClient {
  const connections = new Map<string, Connection>();
  const buffers = new SendBuffers();
  let nextId = 1;

  const failAll = (conn: Connection, e: SwitchyardError) => {
    for (const p of conn.pending.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    conn.pending.clear();
  };

  const connect = (peer: string, address: string): Connection => {
    const { host, port } = splitAddress(address);
    const pending = new Map<number, Pending>();
    // Frames land straight in their own buffers (onread), with no chunks to copy out of.
    const reader = new FrameReader(
      (kind, id, body) => {
        if (kind === KIND.hello) return;
        if (kind === KIND.error && id === 0) {
          failAll(conn, parseError(body, `exchange connection to ${peer} (${address})`));
          conn.socket.destroy();
          return;
        }
        const p = pending.get(id);
        if (!p) return; // timed out meanwhile
        pending.delete(id);
        clearTimeout(p.timer);
        if (kind === KIND.response) {
          try {
            p.resolve(decodeExchangeResponse(body));
          } catch (e) {
            p.reject(e);
          }
        } else p.reject(parseError(body, `exchange with ${peer}`));
      },
      (why) => {
        failAll(conn, new SwitchyardError(`exchange connection to ${peer} (${address}): ${why}`, Code.ResourceExhausted));
        conn.socket.destroy();
      },
    );
    const socket = net.connect({ host, port, noDelay: true, onread: { buffer: () => reader.target(), callback: (n) => (reader.advance(n), true) } });
    socket.setKeepAlive(true, 10_000);
    const conn: Connection = { socket, pending };
    socket.on("error", (e) => failAll(conn, new SwitchyardError(`exchange connection to ${peer} (${address}) failed: ${e.message}`, Code.Unavailable)));
    socket.on("close", () => {
      if (connections.get(address) === conn) connections.delete(address);
      failAll(conn, new SwitchyardError(`exchange connection to ${peer} (${address}) closed`, Code.Unavailable));
    });
    socket.write(jsonFrame(KIND.hello, 0, { protocol: EXCHANGE_PROTOCOL, from: options.from ?? "", ...(options.clusterSecret ? { secret: options.clusterSecret } : {}) }));
    return conn;
  };

  return {
    exchange(peer, address, req, timeoutMs) {
      let conn = connections.get(address);
      if (!conn || conn.socket.destroyed) {
        try {
          conn = connect(peer, address);
        } catch (e) {
          return Promise.reject(e);
        }
        connections.set(address, conn);
      }
      const c = conn;
      const id = nextId;
      nextId = nextId >= 0xffffffff ? 1 : nextId + 1;
      // The caller's trace continues on the owner (nothing when tracing is off).
      const ctx = injectContext();
      const meta = Object.keys(ctx).length > 0 ? Buffer.from(JSON.stringify(ctx), "utf8") : undefined;
      const m = meta?.length ?? 0;
      const prefix = 4 + m + ((4 - (m % 4)) % 4);
      let frame: Buffer | undefined;
      let body: Buffer;
      try {
        body = encodeExchangeRequest(req, { at: 0, buffer: (n) => (frame = buffers.take(HEADER + prefix + n)).subarray(HEADER + prefix, HEADER + prefix + n) });
      } catch (e) {
        return Promise.reject(e);
      }
      const f = frame!;
      writeHeader(f, prefix + body.length, KIND.request, id);
      f.writeUInt32LE(m, HEADER);
      if (meta) meta.copy(f, HEADER + 4);
      f.fill(0, HEADER + 4 + m, HEADER + prefix);
      return new Promise<ExchangeResponseMsg>((resolve, reject) => {
        const timer = setTimeout(() => {
          c.pending.delete(id);
          reject(new SwitchyardError(`exchange with ${peer} (${address}) got no answer within ${timeoutMs} ms`, Code.DeadlineExceeded));
        }, timeoutMs);
        c.pending.set(id, { resolve, reject, timer });
        c.socket.write(f.subarray(0, HEADER + prefix + body.length), () => buffers.give(f));
      });
    },
    drop(address) {
      connections.get(address)?.socket.destroy();
      connections.delete(address);
    },
    close() {
      for (const c of connections.values()) c.socket.destroy();
      connections.clear();
    },
  };
}
