import { describe, expect, it } from "vitest";
import type * as grpc from "@grpc/grpc-js";
import { loadContracts } from "@switchyard/proto";
import { decodeExchangeRequest, decodeExchangeResponse, encodeExchangeRequest, encodeExchangeResponse } from "./exchange-codec";

/** proto-loader's (protobufjs) codec of the same messages: the reference for the wire format. */
const generic = loadContracts().worker.Exchange as grpc.MethodDefinition<Record<string, unknown>, Record<string, unknown>>;

/** gRPC hands the deserializer the message at offset 5 of a fresh buffer (after the frame header). */
function framed(msg: Buffer): Buffer {
  const b = Buffer.alloc(msg.length + 5 + 4096).subarray(0, msg.length + 5);
  msg.copy(b, 5);
  return b.subarray(5);
}

const D = 4;
const src = Float32Array.from({ length: 6 * D }, (_, i) => i * 0.5 - 3);

describe("exchange codec", () => {
  for (const [name, from, homes] of [["short names", "w0", ["w0", "w1"]], ["long names", "worker-with-a-much-longer-id-1", ["a", "worker-with-a-much-longer-id-1", "ü-worker"]]] as const) {
    it(`gathers rows while encoding, and protobufjs reads the bytes (${name})`, () => {
      const msg = { tick: 2 ** 40 + 3, layer: 5, from, homes, rows: 3, u: { src, index: Int32Array.from([4, 0, 2]), dim: D }, assignRow: Int32Array.from([0, 1, 2, 2]), assignExpert: Int32Array.from([1, 1, 3, 7]), micro: 1, micros: 2 };
      const wire = encodeExchangeRequest(msg);
      const ref = generic.requestDeserialize(wire) as { tick: number; layer: number; from: string; homes: string[]; rows: number; u: Buffer; assignRow: Buffer; micro: number; micros: number };
      expect([ref.tick, ref.layer, ref.from, ref.homes, ref.rows, ref.micro, ref.micros]).toEqual([2 ** 40 + 3, 5, from, homes, 3, 1, 2]);
      const u = new Float32Array(new Uint8Array(ref.u).buffer);
      expect([...u]).toEqual([...src.subarray(16, 20), ...src.subarray(0, 4), ...src.subarray(8, 12)]);
      // Decoded in place: every tensor is a 4-byte-aligned view on the framed buffer.
      const buf = framed(wire);
      const back = decodeExchangeRequest(buf);
      expect(back.u).toBeInstanceOf(Float32Array);
      expect((back.u as Float32Array).buffer).toBe(buf.buffer);
      expect(back.assignRow.buffer).toBe(buf.buffer);
      expect(back.assignExpert.buffer).toBe(buf.buffer);
      expect([...(back.u as Float32Array)]).toEqual([...u]);
      expect([...back.assignExpert]).toEqual([1, 1, 3, 7]);
      expect(back).toMatchObject({ tick: 2 ** 40 + 3, layer: 5, from, homes, rows: 3, micro: 1, micros: 2 });
    });
  }

  it("reads any valid encoding: protobufjs's field order, no padding, misaligned (copied)", () => {
    const wire = generic.requestSerialize({ tick: 9, layer: 1, from: "w1", homes: ["w1"], rows: 1, u: Buffer.from(new Float32Array([1, 2, 3, 4]).buffer), assignRow: Buffer.from(new Int32Array([0]).buffer), assignExpert: Buffer.from(new Int32Array([31]).buffer) });
    for (const shift of [0, 1, 2, 3]) {
      const b = Buffer.alloc(wire.length + shift);
      wire.copy(b, shift);
      const r = decodeExchangeRequest(b.subarray(shift));
      expect([...(r.u as Float32Array)]).toEqual([1, 2, 3, 4]);
      expect([...r.assignExpert]).toEqual([31]);
      expect(r).toMatchObject({ tick: 9, layer: 1, from: "w1", homes: ["w1"], rows: 1 });
      expect(r.micros).toBeUndefined();
    }
  });

  it("answers from chunks in one field that protobufjs reads; decodes to one aligned chunk", () => {
    const a = new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]);
    const wire = encodeExchangeResponse({ y: [a.subarray(4), a.subarray(0, 4)] });
    expect([...new Float32Array(new Uint8Array((generic.responseDeserialize(wire) as { y: Buffer }).y).buffer)]).toEqual([5, 6, 7, 8, 1, 2, 3, 4]);
    const buf = framed(wire);
    const r = decodeExchangeResponse(buf);
    expect(r.y).toHaveLength(1);
    expect(r.y[0]!.buffer).toBe(buf.buffer);
    expect([...r.y[0]!]).toEqual([5, 6, 7, 8, 1, 2, 3, 4]);
  });

  it("encodes answers into a supplied buffer, which serves again once the bytes are copied out", () => {
    const scratch = Buffer.alloc(64);
    const sizes: number[] = [];
    const into = (n: number) => (sizes.push(n), scratch);
    const first = encodeExchangeResponse({ y: [new Float32Array([1, 2, 3])] }, { buffer: into });
    expect(first.buffer).toBe(scratch.buffer);
    const copied = framed(first); // what grpc-js does before anything else is encoded
    const second = encodeExchangeResponse({ y: [new Float32Array([9, 8])] }, { buffer: into });
    expect(second.buffer).toBe(scratch.buffer);
    expect([...decodeExchangeResponse(copied).y[0]!]).toEqual([1, 2, 3]);
    expect([...decodeExchangeResponse(framed(second)).y[0]!]).toEqual([9, 8]);
    expect(sizes.every((n) => n <= 64)).toBe(true);
  });

  it("rejects what it cannot read, naming the problem", () => {
    expect(() => decodeExchangeRequest(Buffer.from([0x32, 0x10, 1, 2]))).toThrow(/truncated/);
    expect(() => decodeExchangeRequest(Buffer.from([0x08 | 2, 0]))).toThrow(/field 1 has wire type 2, expected 0/);
    expect(() => decodeExchangeRequest(Buffer.from([0x32, 3, 1, 2, 3]))).toThrow(/3 bytes is not float32/);
    expect(() => encodeExchangeRequest({ tick: 1, layer: 0, from: "a", homes: ["a"], rows: 2, u: { src, index: Int32Array.from([0]), dim: D }, assignRow: new Int32Array(0), assignExpert: new Int32Array(0) })).toThrow(/gathers 1 rows, rows is 2/);
  });
});
