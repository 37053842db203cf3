/**
 * Residual reuse per request (First-Block-Cache, after ParaAttention's FBCache and
 * Cache-DiT's DBCache): every evaluation runs the first block; when the first block's
 * residual (its output minus its input) has moved less than the request's threshold
 * since the request's last full evaluation, the remaining blocks are skipped and their
 * residual from that full evaluation is added instead. The decision is per image (both
 * CFG rows together), so a reused image's rows leave the later blocks' dense parts,
 * routing and expert exchange.
 *
 * The state is a value the caller keeps (the scheduler keeps it with the request), so it
 * moves with the image wherever the image is evaluated and survives the loss of the
 * worker that made it.
 */

/** What an image's last full evaluation left, per row ([rows, T, D] each). */
export interface ReuseState {
  /** Model rows the state covers: 1 (conditional) or 2 (conditional, unconditional). */
  readonly rows: number;
  /** The first block's residual at that evaluation. */
  readonly probe: Float32Array;
  /** The remaining blocks' residual at that evaluation (last block's output minus the first's). */
  readonly residual: Float32Array;
}

/** An evaluation's reuse setting: reuse when the probe moved less than `threshold`. */
export interface ReuseRequest {
  /** Relative L1 change of the first block's residual, > 0; reuse only below it. */
  readonly threshold: number;
  /** The image's state from its last full evaluation; absent: the evaluation is full. */
  readonly state?: ReuseState;
}

export interface ReuseOutcome {
  /** The later blocks were skipped and the state's residual added. */
  readonly reused: boolean;
  /** Relative L1 change of the probe since the state's evaluation; NaN without a usable state. */
  readonly distance: number;
  /** The state after this evaluation (the same object when reused). */
  readonly state: ReuseState;
}

/**
 * sum |probe - ref| / sum |ref|, where probe = out - input (float32) over the rows `rows`
 * ([T*D] floats each) of the first block's output and input, against the state's rows
 * 0.. in order; summed in double precision, so the decision does not depend on where it
 * is computed.
 */
export function probeDistance(out: Float32Array, input: Float32Array, rows: readonly number[], ref: Float32Array, rowSize: number): number {
  let diff = 0;
  let norm = 0;
  for (let k = 0; k < rows.length; k++) {
    const a = rows[k]! * rowSize;
    const b = k * rowSize;
    for (let i = 0; i < rowSize; i++) {
      const x = ref[b + i]!;
      diff += Math.abs(Math.fround(out[a + i]! - input[a + i]!) - x);
      norm += Math.abs(x);
    }
  }
  return norm > 0 ? diff / norm : Number.POSITIVE_INFINITY;
}
