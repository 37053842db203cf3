import { z } from "zod";
import { parseOrThrow } from "@switchyard/config";
import { Code, SwitchyardError } from "@switchyard/errors";
import type { ExpertPlan, IndexedPlan } from "./plan";

/**
 * A placement plan as operators handle it (files, the KV key `planKey`): worker ids plus
 * the owner (index into `workers`) of every expert, per layer. `parsePlanFile` gives the
 * one plan type (ExpertPlan) over indices and over worker ids.
 */
export const PLAN_FORMAT = "switchyard-plan/v1";

export const planFileSchema = z.strictObject({
  format: z.literal(PLAN_FORMAT),
  model: z.string().min(1),
  /** Set when stored; increases with every applied plan. */
  version: z.number().int().nonnegative().optional(),
  workers: z.array(z.string().min(1)).min(1),
  layers: z.number().int().positive(),
  experts: z.number().int().positive(),
  /** owners[layer][expert] = index into workers */
  owners: z.array(z.array(z.number().int().nonnegative())),
  /** replicas[layer][expert] = indices into workers of redundant copies (EPLB-style); absent: none */
  replicas: z.array(z.array(z.array(z.number().int().nonnegative()))).optional(),
  solver: z.string().optional(),
  createdAt: z.string().optional(),
});

export type PlanFile = z.output<typeof planFileSchema>;

export function toPlanFile(p: IndexedPlan, model: string, workers: readonly string[], solver?: string): PlanFile {
  if (workers.length !== p.workers) throw new SwitchyardError(`workers lists ${workers.length} ids, the placement has ${p.workers}`, Code.InvalidArgument, { field: "workers" });
  return {
    format: PLAN_FORMAT, model, workers: [...workers], layers: p.layers, experts: p.experts,
    owners: Array.from({ length: p.layers }, (_, l) => p.owners.slice(l * p.experts, (l + 1) * p.experts)),
    ...(p.replicas?.some((r) => r.length > 0)
      ? { replicas: Array.from({ length: p.layers }, (_, l) => Array.from({ length: p.experts }, (_, e) => [...(p.replicas![l * p.experts + e] ?? [])])) }
      : {}),
    ...(solver ? { solver } : {}), createdAt: new Date().toISOString(),
  };
}

/**
 * Validates a plan (INVALID_ARGUMENT naming the field) and returns it with the plan over
 * worker indices (`placement`, as the solvers score it) and over worker ids (`expertPlan`,
 * as the scheduler puts it in force; version: the file's, else 0).
 */
export function parsePlanFile(raw: unknown): { plan: PlanFile; placement: IndexedPlan; expertPlan: ExpertPlan } {
  const plan = parseOrThrow(planFileSchema, raw, { what: "plan" });
  if (new Set(plan.workers).size !== plan.workers.length) throw new SwitchyardError("plan workers must be distinct", Code.InvalidArgument, { field: "workers" });
  if (plan.owners.length !== plan.layers) throw new SwitchyardError(`owners has ${plan.owners.length} layers, must have ${plan.layers}`, Code.InvalidArgument, { field: "owners" });
  const owner = new Int32Array(plan.layers * plan.experts);
  plan.owners.forEach((row, l) => {
    if (row.length !== plan.experts) throw new SwitchyardError(`owners[${l}] has ${row.length} experts, must have ${plan.experts}`, Code.InvalidArgument, { field: `owners[${l}]` });
    row.forEach((w, e) => {
      if (w >= plan.workers.length) throw new SwitchyardError(`owners[${l}][${e}] ${w} must be < ${plan.workers.length} (a worker index)`, Code.InvalidArgument, { field: `owners[${l}][${e}]` });
      owner[l * plan.experts + e] = w;
    });
  });
  let replicas: number[][] | undefined;
  if (plan.replicas) {
    if (plan.replicas.length !== plan.layers) throw new SwitchyardError(`replicas has ${plan.replicas.length} layers, must have ${plan.layers}`, Code.InvalidArgument, { field: "replicas" });
    replicas = [];
    plan.replicas.forEach((row, l) => {
      if (row.length !== plan.experts) throw new SwitchyardError(`replicas[${l}] has ${row.length} experts, must have ${plan.experts}`, Code.InvalidArgument, { field: `replicas[${l}]` });
      row.forEach((ws, e) => {
        const field = `replicas[${l}][${e}]`;
        for (const w of ws) if (w >= plan.workers.length) throw new SwitchyardError(`${field} ${w} must be < ${plan.workers.length} (a worker index)`, Code.InvalidArgument, { field });
        if (new Set([owner[l * plan.experts + e]!, ...ws]).size !== ws.length + 1) throw new SwitchyardError(`${field} must list distinct workers other than the owner`, Code.InvalidArgument, { field });
        replicas!.push([...ws]);
      });
    });
  }
  const version = plan.version ?? 0;
  const placement: IndexedPlan = { version, workers: plan.workers.length, layers: plan.layers, experts: plan.experts, owners: Array.from(owner), ...(replicas ? { replicas } : {}) };
  const id = (w: number) => plan.workers[w]!;
  const expertPlan: ExpertPlan = { version, layers: plan.layers, experts: plan.experts, owners: placement.owners.map(id), ...(replicas ? { replicas: replicas.map((ws) => ws.map(id)) } : {}) };
  return { plan, placement, expertPlan };
}

/** Experts whose owner changes between two plans (by worker id), and experts whose redundant copies change. */
export function diffPlans(a: PlanFile, b: PlanFile): { moved: { layer: number; expert: number; from: string; to: string }[]; copiesChanged: { layer: number; expert: number; from: string[]; to: string[] }[]; total: number } {
  if (a.layers !== b.layers || a.experts !== b.experts) throw new SwitchyardError("plans are for different models", Code.InvalidArgument);
  const moved: { layer: number; expert: number; from: string; to: string }[] = [];
  const copiesChanged: { layer: number; expert: number; from: string[]; to: string[] }[] = [];
  const copies = (p: PlanFile, l: number, e: number) => (p.replicas?.[l]?.[e] ?? []).map((w) => p.workers[w]!).sort();
  for (let l = 0; l < a.layers; l++)
    for (let e = 0; e < a.experts; e++) {
      const from = a.workers[a.owners[l]![e]!]!;
      const to = b.workers[b.owners[l]![e]!]!;
      if (from !== to) moved.push({ layer: l, expert: e, from, to });
      const ca = copies(a, l, e);
      const cb = copies(b, l, e);
      if (ca.join(",") !== cb.join(",")) copiesChanged.push({ layer: l, expert: e, from: ca, to: cb });
    }
  return { moved, copiesChanged, total: a.layers * a.experts };
}
