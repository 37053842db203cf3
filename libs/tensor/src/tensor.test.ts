import { describe, expect, it } from "vitest";
import { Code, SwitchyardError } from "@switchyard/errors";
import { encodeSafeTensors, parseSafeTensors } from "./safetensors";
import { floatToHalf, halfToFloat, shapeSize, tensor, toFloat32, viewAs } from "./tensor";

function code(fn: () => unknown): Code | undefined {
  try {
    fn();
  } catch (e) {
    return SwitchyardError.from(e).code;
  }
  return undefined;
}

describe("tensor", () => {
  it("views bytes without copying when aligned", () => {
    const f = new Float32Array([1, 2, 3]);
    const v = viewAs("float32", new Uint8Array(f.buffer));
    expect(v.buffer).toBe(f.buffer);
    expect(Array.from(v)).toEqual([1, 2, 3]);
  });

  it("copies once when misaligned", () => {
    const buf = new Uint8Array(13);
    new DataView(buf.buffer).setFloat32(1, 2.5, true);
    expect(viewAs("float32", buf.subarray(1, 5))[0]).toBe(2.5);
  });

  it("checks shapes", () => {
    expect(shapeSize([2, 3, 4])).toBe(24);
    expect(shapeSize([])).toBe(1);
    expect(code(() => tensor("float32", [2, 2], new Float32Array(3)))).toBe(Code.InvalidArgument);
  });

  it("encodes half floats, rounding to nearest", () => {
    for (const v of [0, 1, -2, 0.5, 0.33325195, 65504, 6e-5, 5.96e-8]) expect(halfToFloat(floatToHalf(v))).toBeCloseTo(v, 4);
    expect(floatToHalf(1e6)).toBe(0x7c00);
    expect(floatToHalf(-0)).toBe(0x8000);
    expect(halfToFloat(floatToHalf(0.1))).toBeCloseTo(0.0999755859375, 10);
  });

  it("decodes half floats", () => {
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0xc000)).toBe(-2);
    expect(halfToFloat(0x3555)).toBeCloseTo(0.33325, 5);
    expect(halfToFloat(0x0001)).toBeCloseTo(5.96e-8, 10);
    expect(halfToFloat(0x7c00)).toBe(Infinity);
    expect(toFloat32({ dtype: "float16", shape: [2], data: new Uint16Array([0x3c00, 0x4000]) })).toEqual(new Float32Array([1, 2]));
  });
});

describe("safetensors", () => {
  it("round-trips tensors and metadata", () => {
    const bytes = encodeSafeTensors(
      {
        a: tensor("float32", [2, 2], new Float32Array([1, 2, 3, 4])),
        b: tensor("int64", [1], new BigInt64Array([7n])),
        c: tensor("uint8", [3], new Uint8Array([1, 2, 3])),
      },
      { k: "v" },
    );
    const st = parseSafeTensors(bytes);
    expect(Array.from(st.get("a").data as Float32Array)).toEqual([1, 2, 3, 4]);
    expect(st.get("a").shape).toEqual([2, 2]);
    expect((st.get("b").data as BigInt64Array)[0]).toBe(7n);
    expect(Array.from(st.get("c").data as Uint8Array)).toEqual([1, 2, 3]);
    expect(st.metadata).toEqual({ k: "v" });
    expect(code(() => st.get("zzz"))).toBe(Code.NotFound);
  });

  it("rejects malformed bytes with DATA_LOSS", () => {
    expect(code(() => parseSafeTensors(new Uint8Array(3)))).toBe(Code.DataLoss);
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
    expect(code(() => parseSafeTensors(huge))).toBe(Code.DataLoss);
    const notJson = new Uint8Array(12);
    new DataView(notJson.buffer).setBigUint64(0, 4n, true);
    notJson.set([0x7b, 0x7b, 0x7b, 0x7b], 8);
    expect(code(() => parseSafeTensors(notJson))).toBe(Code.DataLoss);
    const good = encodeSafeTensors({ a: tensor("float32", [2], new Float32Array([1, 2])) });
    expect(code(() => parseSafeTensors(good.subarray(0, good.length - 4)))).toBe(Code.DataLoss);
  });
});
