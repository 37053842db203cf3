import { Code, SwitchyardError } from "@switchyard/errors";
import type { Residency, TickPrediction } from "@switchyard/expert-cache";
import { type LayerExpertRunner, expertChunks } from "@switchyard/engine";
import type { ModelParts } from "@switchyard/model";
import { type WarmUpOptions, warmUpExperts } from "./warm-up-parts";

/**
 * The experts a worker holds and where they run: on its own ModelParts (every held
 * expert loaded), or on an expert device under a budget (the residency's cache decides
 * what is loaded when, and learns each tick's prediction). Ticks only move forward; a
 * tick begins at its RunTick or at the first layer an owner computes for it, whichever
 * comes first, and ends when every micro-batch has run its last layer.
 */
export class HeldExperts {
  /** Predictions of ticks announced by the scheduler, by tick. */
  private readonly predictions = new Map<number, Int32Array>();
  /** The tick the residency is in (owners see a tick through its exchanges). */
  private cacheTick: number | undefined;
  /** Micro-batches of the current tick that ran their last layer here. */
  private lastLayerRuns = 0;
  private lastBegunTick = -Infinity;
  private readonly L: number;
  private readonly E: number;

  constructor(
    private readonly parts: ModelParts,
    readonly residency: Residency | undefined,
    private readonly warmUp: WarmUpOptions | undefined,
    /** Experts on `parts`; ones not loaded come from the host store (disk). */
    private readonly runOnParts: LayerExpertRunner,
  ) {
    this.L = parts.manifest.architecture.numLayers;
    this.E = parts.manifest.moe.numExperts;
  }

  /** A tick's prediction ([layers*E] images per expert), kept for when the tick begins here. */
  predict(tick: number, predicted: Int32Array): void {
    this.predictions.set(tick, predicted);
    for (const t of this.predictions.keys()) if (t < tick - 4) this.predictions.delete(t);
  }

  /** Starts tick `tick` in the residency (once; ticks only move forward). */
  beginTick(tick: number, micros: number): void {
    const r = this.residency;
    if (!r || tick <= this.lastBegunTick) return;
    if (this.cacheTick !== undefined) r.endTick();
    this.cacheTick = tick;
    this.lastBegunTick = tick;
    this.lastLayerRuns = 0;
    r.beginTick(predictionOf(this.predictions.get(tick), this.L, this.E), micros);
  }

  /** Runs one layer's active experts over `x` (expert-major rows, `off` per expert): one output per expert. */
  async run(tick: number, layer: number, experts: Int32Array, off: Int32Array, x: Float32Array, micros: number, D: number): Promise<readonly Float32Array[]> {
    if (!this.residency) return this.runOnParts(layer, experts, off, x);
    const r = this.residency;
    // (an owner may see a peer's rows before its own RunTick)
    if (this.cacheTick !== tick) this.beginTick(tick, micros);
    try {
      return expertChunks(await r.runLayer(layer, experts, off, x), off, D);
    } finally {
      // The tick ends here when every micro-batch has run its last layer.
      if (layer === this.L - 1 && ++this.lastLayerRuns >= micros && this.cacheTick === tick) {
        r.endTick();
        this.cacheTick = undefined;
      }
    }
  }

  /** Holds exactly these experts (global ids): loads (and warms) the new, drops the rest. */
  async set(globalIds: readonly number[]): Promise<{ loaded: number; dropped: number }> {
    const want = new Set(globalIds);
    const { L, E } = this;
    for (const g of want) if (!(Number.isInteger(g) && g >= 0 && g < L * E)) throw new SwitchyardError(`expert ${g} must be an integer >= 0 and < ${L * E}`, Code.InvalidArgument);
    if (this.residency) {
      const before = this.residency.stats().heldExperts;
      await this.residency.setHeld([...want]);
      const held = this.residency.stats().heldExperts;
      return { loaded: Math.max(0, held - before), dropped: Math.max(0, before - held) };
    }
    const loaded: [number, number][] = [];
    let dropped = 0;
    for (const g of want) {
      const l = Math.floor(g / E);
      const e = g % E;
      if (l >= L) throw new SwitchyardError(`expert ${g} must be < ${L * E}`, Code.InvalidArgument);
      if (!this.parts.hasExpert(l, e)) {
        await this.parts.loadExpert(l, e);
        loaded.push([l, e]);
      }
    }
    if (this.warmUp) await warmUpExperts(this.parts, loaded, this.warmUp);
    for (let l = 0; l < L; l++)
      for (let e = 0; e < E; e++)
        if (!want.has(l * E + e) && this.parts.hasExpert(l, e)) {
          await this.parts.unloadExpert(l, e);
          dropped++;
        }
    return { loaded: loaded.length, dropped };
  }

  async close(): Promise<void> {
    await this.residency?.close();
  }
}

/** The scheduler's per-expert counts as a per-layer prediction. */
function predictionOf(counts: Int32Array | undefined, layers: number, experts: number): TickPrediction | undefined {
  if (!counts || counts.length !== layers * experts) return undefined;
  return Array.from({ length: layers }, (_, l) => {
    const m = new Map<number, number>();
    for (let e = 0; e < experts; e++) if (counts[l * experts + e]! > 0) m.set(l * experts + e, counts[l * experts + e]!);
    return m;
  });
}
