import { Code, SwitchyardError } from "@switchyard/errors";
import type { ModelParts } from "@switchyard/model";

/**
 * Warm-up: a worker runs its model parts at the largest tick it expects before it
 * takes traffic, so the first full ticks do not pay for it.
 *
 * Why: on a fresh process the first forwards at a new, larger batch are slow and it
 * takes two or three of them to settle (ONNX Runtime's arenas grow, V8 sizes its heap
 * to the external memory in flight). In-process engine at 128 images (256 rows), 1
 * dense thread: 1145, 892, 703 ms for the first three forwards cold; 729, 691, 700 ms
 * after two warm-up rounds at 256 rows (which took 1.5 s). Under step batching the
 * first big ticks are exactly when a queue has built up, so every request waits for it.
 */
export interface WarmUpOptions {
  /** Model rows (images × CFG branches) per warm-up forward; 0 turns warm-up off. */
  readonly rows: number;
  /** Forwards at that size. */
  readonly rounds: number;
}

/** Two rounds settle it (a third measured no further gain). Rows: the scheduler's default tick budget. */
export const DEFAULT_WARM_UP_ROUNDS = 2;

function check(o: WarmUpOptions): void {
  if (!(Number.isInteger(o.rows) && o.rows >= 0)) throw new SwitchyardError(`warm-up rows ${o.rows} must be an integer >= 0`, Code.InvalidArgument, { field: "rows" });
  if (!(Number.isInteger(o.rounds) && o.rounds >= 0)) throw new SwitchyardError(`warm-up rounds ${o.rounds} must be an integer >= 0`, Code.InvalidArgument, { field: "rounds" });
}

/**
 * Token rows one expert sees in a tick of `rows` model rows when routing spreads
 * evenly: rows × tokens × topK / experts (at least 1).
 */
export function expertWarmRows(parts: Pick<ModelParts, "manifest">, rows: number): number {
  const m = parts.manifest;
  return Math.max(1, Math.ceil((rows * m.architecture.tokens * m.moe.topK) / m.moe.numExperts));
}

/**
 * Runs embed, every layer's dense part and shared expert, and final at `rows` rows,
 * `rounds` times, on zero inputs (the values do not matter, the shapes do). Returns
 * the time it took in ms.
 */
export async function warmUpDense(parts: ModelParts, o: WarmUpOptions): Promise<number> {
  check(o);
  const t0 = performance.now();
  if (o.rows === 0) return 0;
  const m = parts.manifest;
  const { channels, height, width } = m.image;
  const T = m.architecture.tokens;
  const D = m.architecture.hiddenSize;
  const B = o.rows;
  for (let r = 0; r < o.rounds; r++) {
    const { h, c } = await parts.embed(new Float32Array(B * channels * height * width), new Float32Array(B).fill(0.5), new BigInt64Array(B));
    for (let l = 0; l < m.architecture.numLayers; l++) {
      const d = await parts.dense(l, h, c, B);
      if (m.moe.sharedExpert) await parts.shared(l, d.u.subarray(0, B * T * D), B * T);
    }
    await parts.final(h, c, B);
  }
  return performance.now() - t0;
}

/**
 * Runs each of the given experts (layer, expert) `rounds` times over as many rows as
 * it sees in a tick of `o.rows` model rows, the way ticks run them: per layer in one
 * grouped call where the parts group experts (which also builds the layer's group
 * before traffic comes), else one by one. Returns the time it took in ms.
 */
export async function warmUpExperts(parts: ModelParts, experts: readonly (readonly [number, number])[], o: WarmUpOptions): Promise<number> {
  check(o);
  const t0 = performance.now();
  if (o.rows === 0 || experts.length === 0) return 0;
  const rows = expertWarmRows(parts, o.rows);
  const D = parts.manifest.architecture.hiddenSize;
  const byLayer = new Map<number, number[]>();
  for (const [l, e] of experts) byLayer.set(l, [...(byLayer.get(l) ?? []), e]);
  const most = Math.max(...[...byLayer.values()].map((es) => es.length));
  const u = new Float32Array(most * rows * D); // zeros: the values do not matter, the shapes do
  for (let r = 0; r < o.rounds; r++) {
    for (const [l, es] of byLayer) {
      if (parts.runExperts) {
        const offsets = Int32Array.from({ length: es.length + 1 }, (_, i) => i * rows);
        await parts.runExperts(l, Int32Array.from(es), offsets, u.subarray(0, es.length * rows * D));
      } else for (const e of es) await parts.expert(l, e, u.subarray(0, rows * D), rows);
    }
  }
  return performance.now() - t0;
}
