import { type ReuseStateMsg, ownedReuseState, reuseStateBytes } from "@switchyard/proto";

/** 512 MiB, as the scheduler's bound on all the states it holds (SWITCHYARD_MAX_REUSE_BYTES): ~2,600 guided images of the bundled model. */
export const DEFAULT_REUSE_KEEP_BYTES = 512 * 1024 * 1024;

/**
 * The residual-reuse states this worker made (#18), so that the scheduler can name one
 * by the tick that made it instead of sending it back with every evaluation (a guided
 * image's state is 196 KiB of the bundled model; over gRPC every tick carried it both
 * ways). The scheduler still keeps every state (it is what survives the loss of this
 * worker, and what goes with a re-homed image), so nothing depends on this store: a state
 * it no longer holds defers that item, and the scheduler sends it again with the bytes.
 *
 * Bounded in bytes: past the bound the least recently used states go. The scheduler also
 * names the states it will not refer to again (finished, dropped or re-homed images).
 */
export class KeptReuseStates {
  /** Insertion order is use order: the first entry is the least recently used. */
  private readonly entries = new Map<string, { readonly tick: number; readonly state: ReuseStateMsg; readonly bytes: number }>();
  private held = 0;

  constructor(readonly maxBytes: number) {}

  /** The state made for `key` in `tick`, if it is still held (and the last made for it). */
  get(key: string, tick: number): ReuseStateMsg | undefined {
    const e = this.entries.get(key);
    if (!e || e.tick !== tick) return undefined;
    this.entries.delete(key);
    this.entries.set(key, e);
    return e.state;
  }

  /** Keeps `state` as the one made for `key` in `tick` (replacing the key's older one); a state over the whole bound is not kept. */
  put(key: string, tick: number, state: ReuseStateMsg): void {
    this.delete(key);
    const s = ownedReuseState(state);
    const bytes = reuseStateBytes(s);
    if (bytes > this.maxBytes) return;
    while (this.held + bytes > this.maxBytes) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.delete(oldest.value);
    }
    this.entries.set(key, { tick, state: s, bytes });
    this.held += bytes;
  }

  release(keys: Iterable<string>): void {
    for (const k of keys) this.delete(k);
  }

  /** States held, and their bytes. */
  stats(): { readonly states: number; readonly bytes: number } {
    return { states: this.entries.size, bytes: this.held };
  }

  private delete(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.held -= e.bytes;
  }
}
