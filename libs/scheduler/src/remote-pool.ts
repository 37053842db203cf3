import type { Bus, Json, Subjects, Subscription } from "@switchyard/bus";
import type { SwitchyardError } from "@switchyard/errors";
import { Code } from "@switchyard/errors";
import type { TickRequestMsg, TickResponseMsg } from "@switchyard/proto";
import type { WorkerClients } from "@switchyard/transport";
import { createChangeSignal } from "./change-signal";
import { type ExpertPlan, contiguousPlan, expertsOf, reassign } from "./plan";
import type { WorkerPool } from "./service";

/**
 * Workers in other processes. Membership comes from heartbeats on the bus; ticks and
 * expert assignments go over gRPC. Changes are applied at tick boundaries
 * (`prepare()`): new experts are loaded before the plan switches, old ones dropped
 * after; the plan in force is written to the KV bucket.
 */
export interface Heartbeat {
  readonly workerId: string;
  readonly address: string;
  readonly planVersion: number;
}

export interface RemotePoolOptions {
  readonly bus: Bus;
  readonly subjects: Subjects;
  readonly model: string;
  readonly layers: number;
  readonly experts: number;
  readonly clients: WorkerClients;
  /** A worker silent for this long is dropped. */
  readonly livenessMs?: number;
  readonly log?: (msg: string) => void;
}

/** Three missed heartbeats at the workers' default 1 s interval. */
export const DEFAULT_LIVENESS_MS = 3500;

export interface RemotePool extends WorkerPool {
  plan(): ExpertPlan | undefined;
  close(): void;
}

export function createRemotePool(o: RemotePoolOptions): RemotePool {
  const livenessMs = o.livenessMs ?? DEFAULT_LIVENESS_MS;
  const seen = new Map<string, { address: string; lastMs: number }>();
  let active: string[] = [];
  let plan: ExpertPlan | undefined;
  let version = 0;
  let dirty = false;
  const signal = createChangeSignal();
  const notify = () => signal.notify();
  const subs: Subscription[] = [];
  subs.push(
    o.bus.subscribe(o.subjects.heartbeat, (p: Json) => {
      const hb = p as unknown as Heartbeat;
      if (typeof hb?.workerId !== "string" || typeof hb.address !== "string") return;
      const prev = seen.get(hb.workerId);
      seen.set(hb.workerId, { address: hb.address, lastMs: Date.now() });
      o.clients.setAddress(hb.workerId, hb.address);
      if (!prev || !active.includes(hb.workerId)) {
        dirty = true;
        notify();
      }
    }),
  );
  subs.push(
    o.bus.subscribe(o.subjects.leave, (p: Json) => {
      const id = (p as { workerId?: string })?.workerId;
      if (typeof id === "string" && seen.delete(id)) {
        dirty = true;
        notify();
      }
    }),
  );
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [id, s] of seen) if (now - s.lastMs > livenessMs) {
      seen.delete(id);
      o.log?.(`worker ${id} missed its heartbeats; dropping it`);
      dirty = true;
      notify();
    }
  }, Math.max(100, livenessMs / 4));
  sweep.unref?.();

  async function apply(next: ExpertPlan, members: string[]): Promise<void> {
    // Load first (every member holds its new experts), then switch; drop the rest after.
    await Promise.all(members.map((w) => o.clients.setExperts(w, [...new Set([...expertsOf(next, w), ...(plan ? expertsOf(plan, w) : [])])])));
    plan = next;
    active = members;
    const kv = await o.bus.kv(o.subjects.plansBucket);
    await kv.put(o.subjects.planKey(o.model), { version: next.version, layers: next.layers, experts: next.experts, owners: [...next.owners] });
    await Promise.all(members.map((w) => o.clients.setExperts(w, expertsOf(next, w))));
    o.log?.(`plan v${next.version} in force over ${members.join(", ")}`);
  }

  return {
    members: () => active,
    owners: () => plan?.owners ?? [],
    planVersion: () => plan?.version ?? 0,
    plan: () => plan,
    async prepare() {
      if (!dirty) return;
      dirty = false;
      const members = [...seen.keys()].sort();
      if (members.length === 0) {
        active = [];
        return;
      }
      const gone = new Set(active.filter((w) => !seen.has(w)));
      const joined = members.filter((w) => !active.includes(w));
      // A worker leaving keeps the others' experts where they are; a join re-balances.
      const next =
        plan && joined.length === 0 && gone.size > 0 ? reassign(plan, gone, ++version) : contiguousPlan(members, o.layers, o.experts, ++version);
      for (const g of gone) o.clients.remove(g);
      try {
        await apply(next, members);
      } catch (e) {
        dirty = true;
        throw e;
      }
    },
    async runTick(worker: string, req: TickRequestMsg): Promise<TickResponseMsg> {
      return o.clients.runTick(worker, req);
    },
    async markFailed(worker: string, reason: SwitchyardError) {
      // A home may have failed because a peer died: probe everyone, drop who does not answer.
      const probes = await Promise.allSettled(active.map((w) => o.clients.stats(w)));
      let dropped = 0;
      probes.forEach((p, i) => {
        if (p.status === "rejected") {
          seen.delete(active[i]!);
          dropped++;
        }
      });
      if (dropped === 0 && reason.code !== Code.Unavailable && reason.code !== Code.DeadlineExceeded) {
        o.log?.(`worker ${worker} failed a tick but answers probes: ${reason.message}`);
      }
      dirty = true;
      notify();
    },
    changed: (ms: number) => signal.changed(ms),
    close() {
      clearInterval(sweep);
      for (const s of subs) s.unsubscribe();
    },
  };
}
