import { Code, SwitchyardError } from "@switchyard/errors";

/**
 * The one expert-plan type of placement, scheduler and worker: which worker holds which
 * expert. `owners[layer * experts + e]` names the owner; `replicas[layer * experts + e]`,
 * when present, the workers with redundant copies (DeepSeek EPLB-style) of a heavily
 * loaded expert. `W` is how workers are named: ids (strings) on the bus, on the wire and
 * in the runtime; indices 0..workers-1 in the solvers (an `IndexedPlan`).
 *
 * Dispatch (`servingCopy`): a home holding a copy uses it; other homes spread the
 * expert's rows over its copies by row (row index modulo the number of copies).
 */
export interface ExpertPlan<W extends string | number = string> {
  /** Increases with every plan put in force; 0 for a solver's output not yet in force. */
  readonly version: number;
  readonly layers: number;
  readonly experts: number;
  readonly owners: readonly W[];
  readonly replicas?: readonly (readonly W[])[];
}

/** A plan over worker indices, as the solvers make and score them. */
export interface IndexedPlan extends ExpertPlan<number> {
  readonly workers: number;
}

/** Workers holding global expert g: the owner first, then its replicas. */
export function copiesOf<W extends string | number>(plan: Pick<ExpertPlan<W>, "owners" | "replicas">, g: number): readonly W[] {
  const r = plan.replicas?.[g];
  return r && r.length ? [plan.owners[g]!, ...r] : [plan.owners[g]!];
}

/** The copy that serves an assignment of row `row` sent from `home` (see ExpertPlan). */
export function servingCopy<W extends string | number>(copies: readonly W[], home: W, row: number): W {
  if (copies.length === 1) return copies[0]!;
  return copies.includes(home) ? home : copies[row % copies.length]!;
}

/** DeepSpeed-MoE-like default: worker i holds a contiguous block of each layer's experts. */
export function contiguousPlan(workers: readonly string[], layers: number, experts: number, version = 1): ExpertPlan {
  if (workers.length === 0) throw new SwitchyardError("a plan needs at least one worker", Code.FailedPrecondition);
  const sorted = [...workers].sort();
  const owners: string[] = [];
  for (let l = 0; l < layers; l++)
    for (let e = 0; e < experts; e++) owners.push(sorted[Math.min(sorted.length - 1, Math.floor((e * sorted.length) / experts))]!);
  return { version, layers, experts, owners };
}

/** Global expert ids a worker holds under a plan. */
export function expertsOf<W extends string | number>(plan: ExpertPlan<W>, worker: W): number[] {
  const out: number[] = [];
  plan.owners.forEach((w, g) => (w === worker || plan.replicas?.[g]?.includes(worker)) && out.push(g));
  return out;
}

/**
 * The plan after `gone` workers left: copies on them are dropped; an expert whose
 * owner left is taken by a surviving replica when it has one, else by the surviving
 * worker holding the fewest experts of that layer. Survivors keep what they had.
 */
export function reassign(plan: ExpertPlan, gone: ReadonlySet<string>, version = plan.version + 1): ExpertPlan {
  const survivors = [...new Set(plan.owners)].filter((w) => !gone.has(w)).sort();
  if (survivors.length === 0) throw new SwitchyardError("no surviving worker to take over experts", Code.Unavailable);
  const owners = [...plan.owners];
  const replicas = plan.replicas?.map((r) => r.filter((w) => !gone.has(w)));
  if (replicas)
    owners.forEach((w, g) => {
      if (gone.has(w) && replicas[g]!.length) owners[g] = replicas[g]!.shift()!;
    });
  for (let l = 0; l < plan.layers; l++) {
    const count = new Map(survivors.map((w) => [w, 0]));
    for (let e = 0; e < plan.experts; e++) {
      const w = owners[l * plan.experts + e]!;
      if (count.has(w)) count.set(w, count.get(w)! + 1);
    }
    for (let e = 0; e < plan.experts; e++) {
      const g = l * plan.experts + e;
      if (!gone.has(owners[g]!)) continue;
      let best = survivors[0]!;
      for (const w of survivors) if (count.get(w)! < count.get(best)!) best = w;
      owners[g] = best;
      count.set(best, count.get(best)! + 1);
    }
  }
  return { ...plan, version, owners, ...(replicas ? { replicas } : {}) };
}
