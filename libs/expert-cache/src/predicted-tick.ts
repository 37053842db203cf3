import type { ExpertId } from "./cache";
import type { Successors, TickPrediction } from "./residency";

/**
 * Prefetch threshold (rows an expert served the last time it ran). Measured on the live
 * cache bench at batch 1 (50 % budget): bytes loaded per tick 82 with every prediction
 * prefetched, 73 at 4 rows, 70 from 5 to 8 rows (LFU: 71); batches of 4 and more are
 * unaffected (their experts serve tens of rows).
 */
export const MIN_PREFETCH_ROWS = 6;

/**
 * What the residency knows of the tick in progress: the experts predicted per layer
 * (held ones only, corrected as layers run: an expert nobody predicted pulls in its
 * likely successors), how many runs of each layer are still to come (micro-batches),
 * and how many rows each expert served the last time it ran.
 */
export class PredictedTick {
  private pred: Set<ExpertId>[] | undefined;
  /** Runs of each layer still to come in this tick. */
  private readonly runsLeft: Int32Array;
  /** Rows each expert ran over the last time it was used (tiny ones are unstable predictions). */
  private readonly lastRows: Int32Array;

  constructor(
    private readonly layers: number,
    private readonly experts: number,
  ) {
    this.runsLeft = new Int32Array(layers);
    this.lastRows = new Int32Array(layers * experts);
  }

  /** Whether this tick came with a prediction. */
  get predicted(): boolean {
    return this.pred !== undefined;
  }

  begin(prediction: TickPrediction | undefined, held: ReadonlySet<ExpertId>, runsPerLayer: number): void {
    this.runsLeft.fill(Math.max(1, Math.floor(runsPerLayer)));
    this.pred = prediction?.map((m) => new Set([...m.keys()].filter((id) => held.has(id))));
  }

  /**
   * Belady-like scores: layers run in a cycle, so the layer just finished is needed last.
   * A layer some micro-batch has still to run counts as needed first. Within a layer (same
   * next use), experts that served more rows last time stay: they are the ones the next
   * tick most surely uses again.
   */
  scores(layer: number): Map<ExpertId, number> {
    const L = this.layers;
    const scores = new Map<ExpertId, number>();
    this.pred?.forEach((set, k) => {
      // (above the layer about to run: a prefetch never displaces experts in use)
      const soon = k < layer && this.runsLeft[k]! > 0 ? L + 1 : L - ((k - layer + L) % L);
      for (const id of set) scores.set(id, Math.max(scores.get(id) ?? 0, soon + Math.min(0.999, this.lastRows[id]! / 1e6)));
    });
    return scores;
  }

  /** Layer k's predicted experts worth prefetching: those that served at least MIN_PREFETCH_ROWS rows last time. */
  prefetchable(k: number): ExpertId[] {
    return [...(this.pred?.[k] ?? [])].filter((id) => this.lastRows[id]! >= MIN_PREFETCH_ROWS);
  }

  /** A run of `layer` over these experts (rows per expert from `offsets`): the experts it needs (any rows). */
  ran(layer: number, experts: Int32Array, offsets: Int32Array): ExpertId[] {
    const E = this.experts;
    const need: ExpertId[] = [];
    for (let i = 0; i < experts.length; i++) {
      if (offsets[i + 1]! > offsets[i]!) need.push(layer * E + experts[i]!);
      this.lastRows[layer * E + experts[i]!] = offsets[i + 1]! - offsets[i]!;
    }
    if (this.runsLeft[layer]! > 0) this.runsLeft[layer]!--;
    return need;
  }

  /**
   * Scores the layer's prediction against what it needed (predicted experts, and how many
   * of the needed were among them), and corrects the rest of the tick: experts nobody
   * predicted pull in their likely successors (held ones) at the next layer.
   */
  observe(layer: number, need: readonly ExpertId[], successors: Successors | undefined, held: ReadonlySet<ExpertId>): { predicted: number; hits: number } {
    const predicted = this.pred?.[layer];
    if (!predicted) return { predicted: 0, hits: 0 };
    let hits = 0;
    for (const id of need) if (predicted.has(id)) hits++;
    const E = this.experts;
    if (successors && layer + 1 < this.layers) {
      const next = this.pred![layer + 1]!;
      for (const id of need)
        if (!predicted.has(id)) for (const s of successors(layer, id - layer * E)) if (held.has((layer + 1) * E + s)) next.add((layer + 1) * E + s);
    }
    return { predicted: predicted.size, hits };
  }

  end(): void {
    this.pred = undefined;
  }
}
