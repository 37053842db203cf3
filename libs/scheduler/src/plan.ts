import { Code, SwitchyardError } from "@switchyard/errors";

/**
 * Which worker holds which expert. `owners[layer * E + e]` is the worker id. (Replicas
 * and homing policies come with the placement solver.)
 */
export interface ExpertPlan {
  readonly version: number;
  readonly layers: number;
  readonly experts: number;
  readonly owners: readonly string[];
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
export function expertsOf(plan: ExpertPlan, worker: string): number[] {
  const out: number[] = [];
  plan.owners.forEach((w, g) => w === worker && out.push(g));
  return out;
}

/**
 * The plan after `gone` workers left: each of their experts moves to the surviving
 * worker holding the fewest experts of that layer. Survivors keep what they had.
 */
export function reassign(plan: ExpertPlan, gone: ReadonlySet<string>, version = plan.version + 1): ExpertPlan {
  const survivors = [...new Set(plan.owners)].filter((w) => !gone.has(w)).sort();
  if (survivors.length === 0) throw new SwitchyardError("no surviving worker to take over experts", Code.Unavailable);
  const owners = [...plan.owners];
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
  return { ...plan, version, owners };
}
