import { Code, SwitchyardError } from "@switchyard/errors";

/**
 * Device-memory residency of experts (ExpertFlow-style). Decide, then apply: `plan()`
 * is pure — it says which experts to load and which to evict so that every expert a
 * tick needs is resident, never exceeding the byte budget and never evicting a pinned
 * (in-use) expert — and `apply()` records what was done. The same decisions drive a
 * CPU worker (resident = ONNX session ready) or a CUDA device's memory.
 *
 * Experts are global ids (layer · E + e); sizes in bytes.
 */
export type ExpertId = number;

export interface CachePolicy {
  readonly name: string;
  /** Lower = evicted first. `now` is a logical clock (one tick per access batch). */
  priority(id: ExpertId, now: number): number;
  onAccess(id: ExpertId, now: number): void;
  onEvict(id: ExpertId): void;
}

export interface CachePlan {
  readonly load: ExpertId[];
  readonly evict: ExpertId[];
  /** Prefetches that did not fit. */
  readonly skipped: ExpertId[];
}

export interface ExpertCache {
  readonly budgetBytes: number;
  /** Changes the budget; returns the residents evicted (lowest priority first) to fit. */
  resize(budgetBytes: number): ExpertId[];
  readonly policy: CachePolicy;
  isResident(id: ExpertId): boolean;
  residentIds(): ExpertId[];
  usedBytes(): number;
  /**
   * What to load and evict so that `need` is resident (and as much of `prefetch` as
   * fits after it). `pinned` experts are never evicted. RESOURCE_EXHAUSTED when `need`
   * and `pinned` together exceed the budget.
   */
  plan(need: readonly ExpertId[], prefetch?: readonly ExpertId[], pinned?: ReadonlySet<ExpertId>): CachePlan;
  /** Records a plan as carried out. */
  apply(plan: CachePlan): void;
  /** Marks experts as used at logical time `now` (for LRU/LFU bookkeeping). */
  access(ids: readonly ExpertId[], now: number): void;
}

class Cache implements ExpertCache {
  private readonly resident = new Set<ExpertId>();
  private used = 0;
  private clock = 0;
  constructor(
    public budgetBytes: number,
    readonly policy: CachePolicy,
    private readonly sizeOf: (id: ExpertId) => number,
  ) {}

  isResident(id: ExpertId) {
    return this.resident.has(id);
  }

  resize(budgetBytes: number): ExpertId[] {
    if (!(budgetBytes > 0)) throw new SwitchyardError(`budgetBytes ${budgetBytes} must be > 0`, Code.InvalidArgument, { field: "budgetBytes" });
    this.budgetBytes = budgetBytes;
    const order = [...this.resident].sort((a, b) => this.policy.priority(a, this.clock) - this.policy.priority(b, this.clock) || a - b);
    const evict: ExpertId[] = [];
    let used = this.used;
    for (const id of order) {
      if (used <= budgetBytes) break;
      evict.push(id);
      used -= this.sizeOf(id);
    }
    // all at once: apply() checks the budget after its evictions
    this.apply({ load: [], evict, skipped: [] });
    return evict;
  }
  residentIds() {
    return [...this.resident];
  }
  usedBytes() {
    return this.used;
  }

  plan(need: readonly ExpertId[], prefetch: readonly ExpertId[] = [], pinned: ReadonlySet<ExpertId> = new Set()): CachePlan {
    const needSet = new Set(need);
    const keep = new Set<ExpertId>([...needSet, ...[...pinned].filter((p) => this.resident.has(p))]);
    let keepBytes = 0;
    for (const id of keep) keepBytes += this.sizeOf(id);
    if (keepBytes > this.budgetBytes) {
      throw new SwitchyardError(`experts needed now (${keepBytes} bytes) exceed the device budget of ${this.budgetBytes} bytes`, Code.ResourceExhausted);
    }
    const load = [...needSet].filter((id) => !this.resident.has(id));
    // evictable residents, lowest priority first
    const evictable = [...this.resident].filter((id) => !keep.has(id)).sort((a, b) => this.policy.priority(a, this.clock) - this.policy.priority(b, this.clock) || a - b);
    let used = this.used;
    for (const id of load) used += this.sizeOf(id);
    const evict: ExpertId[] = [];
    while (used > this.budgetBytes) {
      const v = evictable.shift();
      if (v === undefined) throw new SwitchyardError("cache accounting error: nothing left to evict", Code.Internal);
      evict.push(v);
      used -= this.sizeOf(v);
    }
    // prefetch into free space, or in place of residents the policy values less
    const skipped: ExpertId[] = [];
    for (const id of prefetch) {
      if (this.resident.has(id) || needSet.has(id) || load.includes(id)) continue;
      const size = this.sizeOf(id);
      if (used + size <= this.budgetBytes) {
        load.push(id);
        used += size;
        continue;
      }
      const v = evictable[0];
      if (v !== undefined && this.sizeOf(v) >= size && this.policy.priority(v, this.clock) < this.policy.priority(id, this.clock)) {
        evictable.shift();
        evict.push(v);
        load.push(id);
        used += size - this.sizeOf(v);
      } else skipped.push(id);
    }
    return { load, evict, skipped };
  }

  apply(plan: CachePlan): void {
    for (const id of plan.evict) {
      if (this.resident.delete(id)) {
        this.used -= this.sizeOf(id);
        this.policy.onEvict(id);
      }
    }
    for (const id of plan.load) {
      if (!this.resident.has(id)) {
        this.resident.add(id);
        this.used += this.sizeOf(id);
      }
    }
    if (this.used > this.budgetBytes) throw new SwitchyardError(`cache over budget: ${this.used} > ${this.budgetBytes} bytes`, Code.Internal);
  }

  access(ids: readonly ExpertId[], now: number): void {
    this.clock = now;
    for (const id of ids) this.policy.onAccess(id, now);
  }
}

export function createExpertCache(options: { budgetBytes: number; policy: CachePolicy; sizeOf: (id: ExpertId) => number }): ExpertCache {
  if (!(options.budgetBytes > 0)) throw new SwitchyardError(`budgetBytes ${options.budgetBytes} must be > 0`, Code.InvalidArgument, { field: "budgetBytes" });
  return new Cache(options.budgetBytes, options.policy, options.sizeOf);
}

/** Least recently used goes first. */
export function lruPolicy(): CachePolicy {
  const last = new Map<ExpertId, number>();
  return {
    name: "lru",
    priority: (id) => last.get(id) ?? -1,
    onAccess: (id, now) => void last.set(id, now),
    onEvict: () => undefined,
  };
}

/** Least frequently used goes first (counts survive eviction, like a frequency sketch). */
export function lfuPolicy(): CachePolicy {
  const count = new Map<ExpertId, number>();
  return {
    name: "lfu",
    priority: (id) => count.get(id) ?? 0,
    onAccess: (id) => void count.set(id, (count.get(id) ?? 0) + 1),
    onEvict: () => undefined,
  };
}

const PREDICTED_PRIORITY = 2 ** 31;

/**
 * Predictive: experts predicted for the next tick rank above everything else (by
 * predicted use), then recency. `setPrediction` is called before each tick.
 */
export function predictivePolicy(): CachePolicy & { setPrediction(scores: ReadonlyMap<ExpertId, number>): void } {
  const last = new Map<ExpertId, number>();
  let predicted: ReadonlyMap<ExpertId, number> = new Map();
  return {
    name: "predictive",
    // Above any recency (a logical clock that would take ~2^31 layer runs to get there),
    // low enough that fractional scores keep their precision (at 1e12 a double resolves
    // only ~2e-4, which erased tie-breaks).
    priority: (id) => (predicted.has(id) ? PREDICTED_PRIORITY + (predicted.get(id) ?? 0) : (last.get(id) ?? -1)),
    onAccess: (id, now) => void last.set(id, now),
    onEvict: () => undefined,
    setPrediction(scores) {
      predicted = scores;
    },
  };
}

const POLICIES = { lru: lruPolicy, lfu: lfuPolicy, predictive: predictivePolicy } as const;
export type PolicyName = keyof typeof POLICIES;

/** Policy registry; unknown names throw INVALID_ARGUMENT. */
export function createPolicy(name: string): CachePolicy {
  const f = POLICIES[name as PolicyName];
  if (!f) throw new SwitchyardError(`cache policy ${JSON.stringify(name)} must be one of ${Object.keys(POLICIES).join(", ")}`, Code.InvalidArgument, { field: "policy" });
  return f();
}
