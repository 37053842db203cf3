import { deflateSync, inflateSync } from "node:zlib";
import { Code, SwitchyardError } from "@switchyard/errors";

/** CRC-32 (IEEE) as PNG chunks need it. */
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ (bytes[i] as number)) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** Encodes 8-bit grayscale (channels 1) or RGB (channels 3) pixels, row-major, as PNG. */
export function encodePng(pixels: Uint8Array, width: number, height: number, channels: 1 | 3 = 1): Uint8Array {
  if (pixels.length !== width * height * channels) {
    throw new SwitchyardError(`png: ${pixels.length} bytes, must be width*height*channels = ${width * height * channels}`, Code.InvalidArgument);
  }
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = channels === 1 ? 0 : 2; // colour type: grey / truecolour
  const stride = width * channels;
  const raw = new Uint8Array((stride + 1) * height);
  for (let y = 0; y < height; y++) raw.set(pixels.subarray(y * stride, y * stride + stride), y * (stride + 1) + 1); // filter 0
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Decodes the PNGs encodePng writes (8-bit, grey or RGB, filter 0): for tests and tools. */
export function decodePng(png: Uint8Array): { width: number; height: number; channels: 1 | 3; pixels: Uint8Array } {
  const dv = new DataView(png.buffer, png.byteOffset, png.byteLength);
  let o = 8;
  let width = 0, height = 0, channels: 1 | 3 = 1;
  const idat: Uint8Array[] = [];
  while (o < png.length) {
    const len = dv.getUint32(o);
    const type = new TextDecoder().decode(png.subarray(o + 4, o + 8));
    const data = png.subarray(o + 8, o + 8 + len);
    if (type === "IHDR") {
      width = dv.getUint32(o + 8);
      height = dv.getUint32(o + 12);
      channels = data[9] === 2 ? 3 : 1;
    } else if (type === "IDAT") idat.push(data);
    o += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) pixels.set(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)), y * stride);
  return { width, height, channels, pixels };
}

/** Maps [lo, hi] floats to 0..255 bytes, clamping. */
export function toBytes(values: Float32Array, lo = -1, hi = 1): Uint8Array {
  const out = new Uint8Array(values.length);
  const s = 255 / (hi - lo);
  for (let i = 0; i < values.length; i++) out[i] = Math.max(0, Math.min(255, Math.round(((values[i] as number) - lo) * s)));
  return out;
}

/**
 * Tiles single-channel images (each [h*w] float) into a grid `columns` wide with a
 * `pad`-pixel border, as 8-bit grayscale pixels.
 */
export function tileGrid(images: readonly Float32Array[], h: number, w: number, options: { columns?: number; pad?: number; range?: [number, number] } = {}): { pixels: Uint8Array; width: number; height: number } {
  const n = images.length;
  const cols = Math.max(1, Math.min(n, options.columns ?? Math.ceil(Math.sqrt(n))));
  const rows = Math.max(1, Math.ceil(n / cols));
  const pad = options.pad ?? 2;
  const [lo, hi] = options.range ?? [-1, 1];
  const width = cols * (w + pad) + pad;
  const height = rows * (h + pad) + pad;
  const pixels = new Uint8Array(width * height);
  images.forEach((img, i) => {
    const bytes = toBytes(img, lo, hi);
    const ox = pad + (i % cols) * (w + pad);
    const oy = pad + Math.floor(i / cols) * (h + pad);
    for (let y = 0; y < h; y++) pixels.set(bytes.subarray(y * w, y * w + w), (oy + y) * width + ox);
  });
  return { pixels, width, height };
}
