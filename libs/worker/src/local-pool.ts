import { Code, SwitchyardError } from "@switchyard/errors";
import type { TickRequestMsg, TickResponseMsg } from "@switchyard/proto";
import { type ExpertPlan, type WorkerPool, createChangeSignal, expertsOf, reassign } from "@switchyard/contract";
import type { WorkerRuntime } from "./runtime";

/**
 * The scheduler's view of workers running in this process (embedded mode, tests).
 * A failed worker is dropped and its experts move to the survivors, which load them
 * from the model directory (their host store).
 */
export interface LocalPool extends WorkerPool {
  readonly plan: ExpertPlan;
  /** Simulates a crash: the worker stops answering. */
  kill(worker: string): void;
}

export function createLocalPool(runtimes: readonly WorkerRuntime[], initial: ExpertPlan, onPeerGone?: (id: string) => void): LocalPool {
  const live = new Map(runtimes.map((r) => [r.id, r]));
  const dead = new Set<string>();
  let plan = initial;
  const signal = createChangeSignal();
  return {
    get plan() {
      return plan;
    },
    members: () => [...live.keys()].sort(),
    owners: () => plan.owners,
    replicas: () => plan.replicas,
    planVersion: () => plan.version,
    async runTick(worker: string, req: TickRequestMsg): Promise<TickResponseMsg> {
      const rt = live.get(worker);
      if (!rt || dead.has(worker)) throw new SwitchyardError(`worker ${worker} is not reachable`, Code.Unavailable);
      return rt.runTick(req);
    },
    async markFailed(worker: string) {
      // A home can fail because a peer died: drop whichever workers are dead, else the home.
      const gone = dead.size > 0 ? new Set([...dead].filter((d) => live.has(d))) : new Set([worker]);
      if (gone.size === 0) return;
      for (const g of gone) {
        live.delete(g);
        onPeerGone?.(g);
      }
      plan = reassign(plan, gone);
      await Promise.all([...live.values()].map((rt) => rt.setExperts(expertsOf(plan, rt.id))));
      signal.notify();
    },
    kill(worker: string) {
      dead.add(worker);
    },
    changed: (ms: number) => signal.changed(ms),
  };
}
