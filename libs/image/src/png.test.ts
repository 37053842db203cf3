import { describe, expect, it } from "vitest";
import { decodePng, encodePng, tileGrid, toBytes } from "./png";

describe("png", () => {
  it("round-trips grayscale pixels and starts with the PNG signature", () => {
    const px = Uint8Array.from({ length: 12 }, (_, i) => i * 20);
    const png = encodePng(px, 4, 3);
    expect(Array.from(png.subarray(0, 8))).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const d = decodePng(png);
    expect(d).toMatchObject({ width: 4, height: 3, channels: 1 });
    expect(Array.from(d.pixels)).toEqual(Array.from(px));
  });

  it("maps [-1, 1] to bytes and tiles a grid", () => {
    expect(Array.from(toBytes(new Float32Array([-1, 0, 1, 5])))).toEqual([0, 128, 255, 255]);
    const imgs = [new Float32Array(4).fill(1), new Float32Array(4).fill(-1), new Float32Array(4).fill(1)];
    const g = tileGrid(imgs, 2, 2, { columns: 2, pad: 1 });
    expect(g.width).toBe(7);
    expect(g.height).toBe(7);
    expect(g.pixels[1 * 7 + 1]).toBe(255); // first image
    expect(g.pixels[1 * 7 + 4]).toBe(0); // second image
    expect(g.pixels[0]).toBe(0); // border
  });

  it("rejects a wrong pixel count", () => {
    expect(() => encodePng(new Uint8Array(3), 2, 2)).toThrow(/width\*height\*channels/);
  });
});
