/**
 * Codecs both sides of a message share, so that neither computes a layout on its own:
 * float32 tensors in bus messages (base64 of their little-endian bytes — small: one
 * 28×28 image is 3 KiB), the per-image experts-used bitmask a worker returns with each
 * tick, and the per-tick prediction the scheduler sends with it.
 */

export function f32ToBase64(a: Float32Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
}

export function base64ToF32(s: string): Float32Array {
  const b = Buffer.from(s, "base64");
  const out = new Float32Array(b.byteLength / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}

/**
 * Experts used per image of a tick (`TickResponseMsg.expertsUsed`): one bitmask of
 * `experts` bits (global ids) per image, `expertMaskBytes(experts)` bytes each, bit g of
 * byte g>>3.
 */
export function expertMaskBytes(experts: number): number {
  return Math.ceil(experts / 8);
}

/** An all-clear experts-used mask for `images` images. */
export function createExpertsUsed(images: number, experts: number): Uint8Array {
  return new Uint8Array(images * expertMaskBytes(experts));
}

/** Marks global expert `g` as used by image `image`. */
export function markExpertUsed(mask: Uint8Array, experts: number, image: number, g: number): void {
  mask[image * expertMaskBytes(experts) + (g >> 3)]! |= 1 << (g & 7);
}

/** Global experts set in a bitmask of `n` bits. */
export function unpackExperts(mask: Uint8Array, n: number): Set<number> {
  const out = new Set<number>();
  for (let g = 0; g < n; g++) if ((mask[g >> 3]! >> (g & 7)) & 1) out.add(g);
  return out;
}

/** Experts image `image` used, from a tick's mask; undefined when the mask does not cover it (a worker that reports none). */
export function expertsUsedBy(mask: Uint8Array | undefined, experts: number, image: number): Set<number> | undefined {
  const stride = expertMaskBytes(experts);
  if (!mask || mask.length < (image + 1) * stride) return undefined;
  return unpackExperts(mask.subarray(image * stride, (image + 1) * stride), experts);
}

/**
 * The per-tick prediction (`TickRequestMsg.predicted`): images of the tick predicted to
 * route to each global expert ([experts] counts), from each image's predicted set;
 * undefined when no image has a prediction.
 */
export function encodePrediction(sets: Iterable<ReadonlySet<number> | undefined>, experts: number): Int32Array | undefined {
  const out = new Int32Array(experts);
  let any = false;
  for (const s of sets) {
    if (!s) continue;
    for (const g of s) if (g >= 0 && g < experts) out[g]!++;
    any = true;
  }
  return any ? out : undefined;
}
