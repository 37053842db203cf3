import type { WorkerPool } from "@switchyard/contract";
import { SwitchyardError } from "@switchyard/errors";
import type { Manifest } from "@switchyard/manifest";
import type { TickItemMsg, TickRequestMsg } from "@switchyard/proto";
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

export interface WarmUpTicksOptions {
  readonly pool: WorkerPool;
  readonly manifest: Manifest;
  readonly maxTickRows: number;
  readonly ticks: number;
  readonly members: readonly string[];
  readonly now: () => number;
  /** Whether to go on: nothing queued and still running. */
  idle(): boolean;
  /** The frame of the next tick (numbered by the scheduler) for these homes. */
  frame(homes: readonly string[], imagesPerHome: readonly number[]): Omit<TickRequestMsg, "items">;
  /** Called once per warm-up tick run. */
  ran(): void;
}

/**
 * Runs warm-up ticks over `members` until `ticks` are done, a request arrives or the plan
 * changes; results are dropped. Says what it did (the scheduler's "ready" line).
 */
export async function runWarmUpTicks(o: WarmUpTicksOptions): Promise<string> {
  const t0 = o.now();
  const byHome = warmUpItems(o.manifest, o.maxTickRows, o.members);
  const homes = [...byHome.keys()].filter((h) => byHome.get(h)!.length > 0);
  let done = 0;
  const version = o.pool.planVersion();
  for (; done < o.ticks && o.idle(); done++) {
    // A tick boundary: a worker that joined meanwhile makes a new plan, warmed up in its turn.
    if (done > 0) await o.pool.prepare?.();
    if (o.pool.planVersion() !== version) return `warm-up cut short by plan v${o.pool.planVersion()}`;
    const frame = o.frame(homes, homes.map((h) => byHome.get(h)!.length));
    const settled = await Promise.allSettled(homes.map((h) => o.pool.runTick(h, { ...frame, items: byHome.get(h)! })));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
    o.ran();
    if (failed) {
      // The next real tick finds out who is gone and re-plans.
      return `warm-up tick failed (${SwitchyardError.from(failed.reason).message})`;
    }
  }
  return `warmed up: ${done} ticks of ${homes.reduce((s, h) => s + byHome.get(h)!.length, 0)} images in ${o.now() - t0} ms`;
}
