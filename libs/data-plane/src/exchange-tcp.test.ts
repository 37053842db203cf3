import * as net from "node:net";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { Code, SwitchyardError } from "@switchyard/errors";
import { rejection } from "@switchyard/errors/testing";
import type { ExchangeRequestMsg, ExchangeResponseMsg } from "@switchyard/proto";
import { generateClusterSecret } from "./cluster-secret";
import { EXCHANGE_PROTOCOL, FrameReader, createExchangeClient, startExchangeServer } from "./exchange-tcp";
import { createWorkerClients, startWorkerServer } from "./worker-grpc";

const D = 4;

/** An owner that answers each assignment with its row scaled by (expert + 1): checks rows, assignments and order. */
async function owner(req: ExchangeRequestMsg): Promise<ExchangeResponseMsg> {
  const u = req.u as Float32Array;
  const y = new Float32Array(req.assignRow.length * D);
  for (let i = 0; i < req.assignRow.length; i++) for (let d = 0; d < D; d++) y[i * D + d] = u[req.assignRow[i]! * D + d]! * (req.assignExpert[i]! + 1);
  return { y: [y] };
}

function request(tick: number, rows: number): { msg: ExchangeRequestMsg; want: number[] } {
  const src = Float32Array.from({ length: (rows + 3) * D }, (_, i) => i * 0.25 - tick);
  const index = Int32Array.from({ length: rows }, (_, j) => (j * 7 + tick) % (rows + 3));
  const assignRow = Int32Array.from({ length: rows * 2 }, (_, i) => i % rows);
  const assignExpert = Int32Array.from({ length: rows * 2 }, (_, i) => (i * 5 + tick) % 16);
  const want: number[] = [];
  for (let i = 0; i < assignRow.length; i++) for (let d = 0; d < D; d++) want.push(src[index[assignRow[i]!]! * D + d]! * (assignExpert[i]! + 1));
  return { msg: { tick, layer: tick % 6, from: "w0", homes: ["w0", "w1"], rows, u: { src, index, dim: D }, assignRow, assignExpert }, want };
}

const addr = (port: number) => `127.0.0.1:${port}`;

describe("the TCP row exchange (#17: grpc-js cost 2.3-2.5 ms and 2.5 ms of CPU per 0.6 MB round trip)", () => {
  it("carries gathered rows and answers over a real socket, many calls in flight, each answer to its call, tensors viewed in place", async () => {
    let served = 0;
    // Answers in reverse arrival order: responses must find their calls by id.
    const waiting: (() => void)[] = [];
    const server = await startExchangeServer(async (req) => {
      served++;
      await new Promise<void>((r) => {
        waiting.push(r);
        if (waiting.length === 8) for (const w of waiting.reverse()) w();
      });
      return owner(req);
    });
    const client = createExchangeClient({ from: "w0" });
    try {
      const calls = Array.from({ length: 8 }, (_, k) => request(k + 1, 10 + k * 300));
      const answers = await Promise.all(calls.map((c) => client.exchange("w1", addr(server.port), c.msg, 10_000)));
      expect(served).toBe(8);
      answers.forEach((a, k) => {
        expect(a.y).toHaveLength(1);
        expect(a.y[0]!.byteOffset % 4).toBe(0);
        expect([...a.y[0]!]).toEqual(calls[k]!.want);
      });
    } finally {
      client.close();
      await server.stop();
    }
  });

  it("passes an owner's error back with its code and message; a bad request is INVALID_ARGUMENT and the connection lives on", async () => {
    const server = await startExchangeServer(async (req) => {
      if (req.tick === 13) throw new SwitchyardError("tick 13 layer 1: w0 sent twice", Code.AlreadyExists);
      return owner(req);
    });
    const client = createExchangeClient();
    try {
      const e = await rejection(client.exchange("w1", addr(server.port), request(13, 3).msg, 5000));
      expect([e.code, e.rawMessage]).toEqual([Code.AlreadyExists, "tick 13 layer 1: w0 sent twice"]);
      const bad = { ...request(2, 3).msg, u: { src: new Float32Array(8), index: Int32Array.from([0]), dim: D } };
      const e2 = await rejection(client.exchange("w1", addr(server.port), bad, 5000));
      expect([e2.code, e2.rawMessage]).toEqual([Code.InvalidArgument, "exchange u gathers 1 rows, rows is 3"]);
      const ok = request(3, 5);
      expect([...(await client.exchange("w1", addr(server.port), ok.msg, 5000)).y[0]!]).toEqual(ok.want);
    } finally {
      client.close();
      await server.stop();
    }
  });

  it("refuses a connection without the cluster secret or with a wrong one (UNAUTHENTICATED, handler never runs) and serves the right one", async () => {
    const secret = generateClusterSecret();
    let served = 0;
    const server = await startExchangeServer(async (r) => (served++, owner(r)), { clusterSecret: secret });
    const [anonymous, wrong, member] = [createExchangeClient(), createExchangeClient({ clusterSecret: generateClusterSecret() }), createExchangeClient({ clusterSecret: secret })];
    try {
      const e1 = await rejection(anonymous.exchange("w1", addr(server.port), request(1, 2).msg, 5000));
      expect([e1.code, e1.rawMessage]).toEqual([Code.Unauthenticated, "data-plane call without the cluster secret (the exchange hello's secret)"]);
      const e2 = await rejection(wrong.exchange("w1", addr(server.port), request(1, 2).msg, 5000));
      expect([e2.code, e2.rawMessage]).toEqual([Code.Unauthenticated, "data-plane call with a wrong cluster secret (the exchange hello's secret)"]);
      expect(served).toBe(0);
      const ok = request(4, 6);
      expect([...(await member.exchange("w1", addr(server.port), ok.msg, 5000)).y[0]!]).toEqual(ok.want);
      expect(served).toBe(1);
    } finally {
      for (const c of [anonymous, wrong, member]) c.close();
      await server.stop();
    }
  });

  it("fails calls UNAVAILABLE when the peer goes away, DEADLINE_EXCEEDED when it does not answer, and dials again on the next call", async () => {
    const hang = await startExchangeServer(() => new Promise<never>(() => undefined));
    const client = createExchangeClient();
    try {
      const late = await rejection(client.exchange("w1", addr(hang.port), request(1, 2).msg, 200));
      expect([late.code, late.rawMessage]).toEqual([Code.DeadlineExceeded, `exchange with w1 (${addr(hang.port)}) got no answer within 200 ms`]);
      const pending = rejection(client.exchange("w1", addr(hang.port), request(2, 2).msg, 10_000));
      await new Promise((r) => setTimeout(r, 50));
      const port = hang.port;
      await hang.stop();
      const gone = await pending;
      expect(gone.code).toBe(Code.Unavailable);
      expect(gone.message).toContain(`exchange connection to w1 (${addr(port)})`);
      const refused = await rejection(client.exchange("w1", addr(port), request(3, 2).msg, 5000));
      expect(refused.code).toBe(Code.Unavailable);
      // The same address serving again: the next call dials it.
      const back = await startExchangeServer(owner, { port });
      try {
        const ok = request(5, 4);
        expect([...(await client.exchange("w1", addr(port), ok.msg, 5000)).y[0]!]).toEqual(ok.want);
      } finally {
        await back.stop();
      }
    } finally {
      client.close();
    }
  });

  it("answers a connection that does not start with a hello, or announces an oversized frame, with an error and closes it", async () => {
    const server = await startExchangeServer(owner);
    const raw = async (bytes: Buffer) => {
      const s = net.connect(server.port, "127.0.0.1");
      const got: Buffer[] = [];
      s.on("data", (d) => got.push(d));
      s.write(bytes);
      await new Promise((r) => s.on("close", r));
      const all = Buffer.concat(got);
      return { kind: all[4], body: JSON.parse(all.subarray(12, 12 + all.readUInt32LE(0)).toString()) as { code: number; message: string } };
    };
    const header = (len: number, kind: number) => {
      const h = Buffer.alloc(12);
      h.writeUInt32LE(len, 0);
      h[4] = kind;
      return h;
    };
    try {
      expect(await raw(Buffer.concat([header(4, 2), Buffer.alloc(4)]))).toEqual({ kind: 4, body: { code: Code.InvalidArgument, message: "exchange connection must start with a hello frame, got kind 2" } });
      const hello = Buffer.from(JSON.stringify({ protocol: "switchyard-exchange/0" }));
      expect(await raw(Buffer.concat([header(hello.length, 1), hello]))).toEqual({ kind: 4, body: { code: Code.Unimplemented, message: `exchange hello speaks "switchyard-exchange/0"; this worker speaks ${EXCHANGE_PROTOCOL}` } });
      expect(await raw(header(2 ** 31, 1))).toEqual({ kind: 4, body: { code: Code.ResourceExhausted, message: `a frame of ${2 ** 31} bytes is over the limit of ${256 * 1024 * 1024}` } });
    } finally {
      await server.stop();
    }
  });

  it("reads the same frames however the stream is cut (copied chunks or reads into its own buffers)", () => {
    const frame = fc.record({ kind: fc.integer({ min: 1, max: 4 }), id: fc.integer({ min: 0, max: 2 ** 32 - 1 }), body: fc.uint8Array({ maxLength: 300 }) });
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }), (frames, cuts) => {
        const bytes = Buffer.concat(
          frames.flatMap((f) => {
            const h = Buffer.alloc(12);
            h.writeUInt32LE(f.body.length, 0);
            h[4] = f.kind;
            h.writeUInt32LE(f.id, 8);
            return [h, Buffer.from(f.body)];
          }),
        );
        const seen = (via: "push" | "target") => {
          const out: { kind: number; id: number; body: number[]; aligned: boolean }[] = [];
          const r = new FrameReader((kind, id, body) => out.push({ kind, id, body: [...body], aligned: body.byteOffset === 0 }), (why) => {
            throw new Error(why);
          });
          for (let off = 0, k = 0; off < bytes.length; k++) {
            const n = Math.min(cuts[k % cuts.length]!, bytes.length - off);
            if (via === "push") {
              r.push(bytes.subarray(off, off + n));
              off += n;
            } else {
              // a socket read: at most what the target has room for
              const t = r.target();
              const m = Math.min(n, t.length);
              bytes.copy(t, 0, off, off + m);
              r.advance(m);
              off += m;
            }
          }
          return out;
        };
        const want = frames.map((f) => ({ kind: f.kind, id: f.id, body: [...f.body], aligned: true }));
        expect(seen("push")).toEqual(want);
        expect(seen("target")).toEqual(want);
      }),
    );
  });

  it("is what WorkerClients use for a peer that advertises an exchange address; gRPC otherwise", async () => {
    const via: string[] = [];
    const handler = { runTick: () => Promise.reject(new Error("unused")), setExperts: () => Promise.reject(new Error("unused")), stats: () => ({}) };
    const grpcServer = await startWorkerServer({ ...handler, exchange: async (r) => (via.push("grpc"), owner(r)) });
    const tcpServer = await startExchangeServer(async (r) => (via.push("tcp"), owner(r)));
    const clients = createWorkerClients({ from: "w0" });
    const grpcOnly = createWorkerClients({ tcpExchange: false });
    try {
      const one = request(7, 9);
      clients.setAddress("w1", grpcServer.address);
      expect([...(await clients.exchange("w1", one.msg)).y[0]!]).toEqual(one.want);
      clients.setAddress("w1", grpcServer.address, addr(tcpServer.port));
      expect([...(await clients.exchange("w1", one.msg)).y[0]!]).toEqual(one.want);
      grpcOnly.setAddress("w1", grpcServer.address, addr(tcpServer.port));
      expect([...(await grpcOnly.exchange("w1", one.msg)).y[0]!]).toEqual(one.want);
      clients.setAddress("w1", grpcServer.address);
      expect([...(await clients.exchange("w1", one.msg)).y[0]!]).toEqual(one.want);
      expect(via).toEqual(["grpc", "tcp", "grpc", "grpc"]);
    } finally {
      clients.close();
      grpcOnly.close();
      await tcpServer.stop();
      await grpcServer.stop();
    }
  });
});
