import {
  type Bus, type ExpertPlan, type PlanInForce, type Subjects, type Subscription, type WorkerPool, PLAN_FORMAT, channels, contiguousPlan, createChangeSignal, expertsOf, parsePlanFile,
  reassign, serve, subscribe,
} from "@switchyard/contract";
import { Code, SwitchyardError } from "@switchyard/errors";
import type { TickRequestMsg, TickResponseMsg, WorkerTraffic } from "@switchyard/proto";
import type { WorkerClients } from "@switchyard/data-plane";

/**
 * Workers in other processes. Membership comes from heartbeats on the bus; ticks and
 * expert assignments go over gRPC. Changes are applied at tick boundaries
 * (`prepare()`): new experts are loaded before the plan switches, old ones dropped
 * after; the plan in force is written to the KV bucket.
 */
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
  prepare(): Promise<void>;
  plan(): ExpertPlan | undefined;
  close(): void;
}

export function createRemotePool(o: RemotePoolOptions): RemotePool {
  const livenessMs = o.livenessMs ?? DEFAULT_LIVENESS_MS;
  const seen = new Map<string, { address: string; lastMs: number }>();
  /** Latest traffic totals per worker, recorded with each plan so `placement status` can report since then. */
  const traffic = new Map<string, WorkerTraffic>();
  let active: string[] = [];
  let plan: ExpertPlan | undefined;
  let version = 0;
  let dirty = false;
  /** An operator's plan from the KV bucket, waiting for the next tick boundary. */
  let operatorPlan: { plan: ExpertPlan; workers: readonly string[] } | undefined;
  /** An operator plan arrived, or a tick failed, since the last plan was applied: re-plan even if membership is the same. */
  let forced = false;
  const signal = createChangeSignal();
  const notify = () => signal.notify();
  /** Incarnations that asked to leave: their late heartbeats must not bring them back. */
  const departed = new Set<string>();
  /** Drains waiting for a plan without their worker (an error: none will come). */
  const draining = new Map<string, ((err?: SwitchyardError) => void)[]>();
  const settleDrains = () => {
    for (const [id, waiters] of draining) if (!active.includes(id)) {
      draining.delete(id);
      for (const w of waiters) w();
    }
  };
  const subs: Subscription[] = [];
  const ch = channels(o.subjects);
  const invalid = (e: SwitchyardError, subject: string) => o.log?.(`ignoring a message on ${subject}: ${e.message}`);
  subs.push(
    subscribe(o.bus, ch.heartbeat, (hb) => {
      if (hb.incarnation !== undefined && departed.has(`${hb.workerId}/${hb.incarnation}`)) return;
      const prev = seen.get(hb.workerId);
      seen.set(hb.workerId, { address: hb.address, lastMs: Date.now() });
      if (hb.traffic) traffic.set(hb.workerId, hb.traffic);
      o.clients.setAddress(hb.workerId, hb.address);
      if (!prev || !active.includes(hb.workerId)) {
        dirty = true;
        notify();
      }
    }, invalid),
  );
  subs.push(
    subscribe(o.bus, ch.leave, ({ workerId }) => {
      if (seen.delete(workerId)) {
        dirty = true;
        notify();
      }
    }, invalid),
  );
  // Graceful drain: the worker stops heartbeating, asks to leave, and keeps serving until
  // this answers, i.e. until a plan without it is in force (its experts moved, no tick of
  // the old plan in flight: plans change only between ticks).
  subs.push(
    serve(o.bus, ch.drain, async (d) => {
      if (d.incarnation !== undefined) departed.add(`${d.workerId}/${d.incarnation}`);
      const t0 = Date.now();
      const left = new Promise<void>((resolve, reject) => draining.set(d.workerId, [...(draining.get(d.workerId) ?? []), (err) => (err ? reject(err) : resolve())]));
      if (seen.delete(d.workerId)) {
        o.log?.(`worker ${d.workerId} is draining`);
        dirty = true;
        notify();
      }
      settleDrains();
      await left;
      return { workerId: d.workerId, planVersion: version, waitedMs: Date.now() - t0 };
    }),
  );
  // Operator plans (switchyard placement apply/rollback) arrive through the KV bucket.
  let kvWatch: Subscription | undefined;
  void o.bus
    .kv(o.subjects.plansBucket)
    .then((kv) =>
      kv.watch(o.subjects.planKey(o.model), (e) => {
        const v = e.value;
        // Other writers' keys under the same name are not plans; a plan that does not parse is reported.
        if (!v || typeof v !== "object" || Array.isArray(v) || v.format !== PLAN_FORMAT) return;
        try {
          const { plan, expertPlan } = parsePlanFile(v);
          if (plan.layers !== o.layers || plan.experts !== o.experts) {
            throw new SwitchyardError(`plan is for ${plan.layers}×${plan.experts} experts, the model has ${o.layers}×${o.experts}`, Code.InvalidArgument);
          }
          operatorPlan = { plan: expertPlan, workers: plan.workers };
          o.log?.(`operator plan v${plan.version} received; switching at the next tick boundary`);
          forced = true;
          dirty = true;
          notify();
        } catch (err) {
          o.log?.(`ignoring an invalid operator plan: ${SwitchyardError.from(err).message}`);
        }
      }),
    )
    .then((w) => (kvWatch = w))
    .catch((err) => o.log?.(`cannot watch operator plans: ${SwitchyardError.from(err).message}`));
  /**
   * RunTick calls in flight per worker. A worker that falls silent is dropped from
   * them at once: its tick fails UNAVAILABLE and the work is re-homed, instead of every
   * request waiting for the call's own timeout (DEFAULT_TICK_TIMEOUT_MS).
   */
  const inFlight = new Map<string, Set<(e: SwitchyardError) => void>>();
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [id, s] of seen) if (now - s.lastMs > livenessMs) {
      seen.delete(id);
      o.log?.(`worker ${id} missed its heartbeats; dropping it`);
      const silent = new SwitchyardError(`worker ${id} missed its heartbeats (silent for ${now - s.lastMs} ms, liveness budget ${livenessMs} ms)`, Code.Unavailable);
      for (const abandon of inFlight.get(id) ?? []) abandon(silent);
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
    // The plan in force (operator plans stay under planKey, untouched).
    const record: PlanInForce = {
      version: next.version, layers: next.layers, experts: next.experts, owners: [...next.owners], workers: [...members],
      ...(next.replicas ? { replicas: next.replicas.map((r) => [...r]) } : {}),
      appliedAt: new Date().toISOString(),
      trafficAtApply: Object.fromEntries(
        members.filter((w) => traffic.has(w)).map((w) => {
          const { ticks, rowsSent, rowsReceived, bytesSent, bytesReceived, expertRows } = traffic.get(w)!;
          return [w, { ticks, rowsSent, rowsReceived, bytesSent, bytesReceived, expertRows }];
        }),
      ),
    };
    await kv.put(o.subjects.planInForceKey(o.model), record);
    await Promise.all(members.map((w) => o.clients.setExperts(w, expertsOf(next, w))));
    o.log?.(`plan v${next.version} in force over ${members.join(", ")}`);
  }

  return {
    members: () => active,
    owners: () => plan?.owners ?? [],
    replicas: () => plan?.replicas,
    planVersion: () => plan?.version ?? 0,
    plan: () => plan,
    async prepare() {
      if (!dirty) return;
      dirty = false;
      const members = [...seen.keys()].sort();
      if (members.length === 0) {
        active = [];
        settleDrains();
        return;
      }
      // A heartbeat that arrived while the last plan was being applied changes nothing.
      if (plan && !forced && members.join() === active.join()) return;
      const wasForced = forced;
      forced = false;
      const gone = new Set(active.filter((w) => !seen.has(w)));
      const joined = members.filter((w) => !active.includes(w));
      let next: ExpertPlan;
      if (operatorPlan && operatorPlan.workers.every((w) => seen.has(w))) {
        // The operator's plan, for the workers it names (others hold no experts).
        next = { ...operatorPlan.plan, version: ++version };
      } else if (operatorPlan) {
        // Some of its workers are gone: keep it, moving their experts to survivors.
        next = reassign(operatorPlan.plan, new Set(operatorPlan.workers.filter((w) => !seen.has(w))), ++version);
      } else {
        // A worker leaving keeps the others' experts where they are; a join re-balances.
        next = plan && joined.length === 0 && gone.size > 0 ? reassign(plan, gone, ++version) : contiguousPlan(members, o.layers, o.experts, ++version);
      }
      for (const g of gone) o.clients.remove(g);
      try {
        await apply(next, members);
        settleDrains();
      } catch (e) {
        dirty = true;
        forced ||= wasForced;
        throw e;
      }
    },
    runTick(worker: string, req: TickRequestMsg): Promise<TickResponseMsg> {
      return new Promise<TickResponseMsg>((resolve, reject) => {
        const set = inFlight.get(worker) ?? new Set();
        inFlight.set(worker, set);
        const abandon = (e: SwitchyardError) => reject(e);
        set.add(abandon);
        o.clients.runTick(worker, req).then(resolve, reject).finally(() => set.delete(abandon));
      });
    },
    async markFailed(worker: string, reason: SwitchyardError) {
      // A home may have failed because a peer died: probe everyone, drop who does not answer.
      // (a worker already dropped for silence is not probed: a hung one would take the probe's timeout)
      const probes = await Promise.allSettled(active.map((w) => (seen.has(w) ? o.clients.stats(w) : Promise.reject(new SwitchyardError(`worker ${w} is silent`, Code.Unavailable)))));
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
      // Re-plan even when everyone answers: a worker that restarted under its id holds no experts.
      forced = true;
      dirty = true;
      notify();
    },
    changed: (ms: number) => signal.changed(ms),
    close() {
      clearInterval(sweep);
      kvWatch?.unsubscribe();
      for (const s of subs) s.unsubscribe();
      // Drains still waiting are answered now: this scheduler applies no more plans, and
      // the workers would otherwise wait out their drain timeout before stopping.
      for (const [id, waiters] of draining) {
        const err = new SwitchyardError(`the scheduler stopped before a plan without worker ${id} came into force`, Code.Unavailable);
        for (const w of waiters) w(err);
      }
      draining.clear();
    },
  };
}
