/**
 * Seeded Gaussian noise, identical on every process and platform: the scheduler and
 * the in-process engine derive each image's initial noise from (seed, image index).
 * xoshiro128** seeded through splitmix32, Box-Muller in float64, rounded to float32.
 */
function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export interface Rng {
  /** Uniform in [0, 1) with 32 random bits. */
  next(): number;
}

export function createRng(seed: number, stream = 0): Rng {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 2 ** 32) >>> 0;
  const st = { s: (lo ^ Math.imul(hi, 0x27d4eb2d) ^ Math.imul(stream + 1, 0x165667b1)) | 0 };
  let a = splitmix32(st), b = splitmix32(st), c = splitmix32(st), d = splitmix32(st);
  if ((a | b | c | d) === 0) a = 1;
  return {
    next(): number {
      const r = Math.imul(((Math.imul(b, 5) << 7) | (Math.imul(b, 5) >>> 25)), 9) >>> 0;
      const t = b << 9;
      c ^= a; d ^= b; b ^= c; a ^= d; c ^= t;
      d = (d << 11) | (d >>> 21);
      return r / 2 ** 32;
    },
  };
}

/** `size` standard-normal float32 values for image `index` of a request seeded `seed`. */
export function gaussianNoise(seed: number, index: number, size: number): Float32Array {
  const rng = createRng(seed, index);
  const out = new Float32Array(size);
  for (let i = 0; i < size; i += 2) {
    const u1 = 1 - rng.next(); // (0, 1]
    const u2 = rng.next();
    const r = Math.sqrt(-2 * Math.log(u1));
    out[i] = r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < size) out[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  return out;
}
