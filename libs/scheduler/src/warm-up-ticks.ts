import type { Manifest } from "@switchyard/manifest";
import type { TickItemMsg } from "@switchyard/proto";
import { gaussianNoise } from "@switchyard/sampler";

/**
 * Warm-up ticks: when a plan comes into force and nothing is queued, the scheduler runs
 * synthetic ticks at its full row budget over every worker, as a real tick would be
 * split, and throws the results away (like Triton's model_warmup).
 *
 * Why: a cluster's first full ticks are slow even after each worker has run its own
 * parts at that size (see @switchyard/worker warm-up-parts.ts): the workers' gRPC channels to
 * each other still have small HTTP/2 windows, and the JavaScript of the tick and
 * exchange paths is not yet optimized. Measured with 80 requests at 40/s on 2 workers:
 * the first pass on a fresh cluster took 10.3 s, the same load again 8.8 s (first
 * ticks: 33 images in 534 ms, 85 in 678 ms; warm: 42 in 285, 91 in 556).
 */
export const DEFAULT_WARM_UP_TICKS = 2;

/**
 * The items of a warm-up tick over `members`: as many images as fill `maxTickRows`
 * with classifier-free guidance (2 rows each), spread round-robin, each a fixed noise
 * image at t = 0.5 with a class label (so routing spreads as in real traffic).
 */
export function warmUpItems(manifest: Manifest, maxTickRows: number, members: readonly string[]): Map<string, TickItemMsg[]> {
  const out = new Map<string, TickItemMsg[]>(members.map((w) => [w, []]));
  if (members.length === 0) return out;
  const { channels, height, width } = manifest.image;
  const P = channels * height * width;
  const images = Math.max(1, Math.floor(maxTickRows / 2));
  const classes = manifest.conditioning.numClasses;
  for (let i = 0; i < images; i++) {
    out.get(members[i % members.length]!)!.push({ requestId: `warm-up-${i}`, imageIndex: 0, x: gaussianNoise(0x5717c4, i, P), t: 0.5, label: i % classes, guidance: 2 });
  }
  return out;
}
