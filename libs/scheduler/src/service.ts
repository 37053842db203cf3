import {
  type Bus, type Channels, type RequestEvent, SCHEDULER_QUEUE_GROUP, type SchedulerStats, type SubmitMessage, type SubmitReply, type Subjects, type Subscription, type WorkerPool,
  channels, f32ToBase64, publish, serve, subscribe,
} from "@switchyard/contract";
import { Code, SwitchyardError, codeToString } from "@switchyard/errors";
import type { Manifest } from "@switchyard/manifest";
import { reuseKey } from "@switchyard/proto";
import { type ClassPriors, createClassPriors } from "@switchyard/expert-cache";
import { runWarmUpTicks } from "./warm-up-ticks";
import { createReadiness } from "./readiness";
import type { SchedulerMetrics } from "./metrics";
import { SpanStatusCode, inSpan, tracer } from "@switchyard/telemetry";
import { type Live, admitRequest, doneEvent, traceIdOf } from "./request";
import type { RequestJournal } from "./journal";
import { type TickFrame, buildTick, carriedReleases, itemsByHome, runTick, updateRequests } from "./tick";
import {
  DEFAULT_MAX_QUEUED, DEFAULT_MAX_QUEUED_WORK, DEFAULT_MAX_REUSE_BYTES, DEFAULT_MAX_TICK_ROWS, DEFAULT_MAX_WAIT_TICKS, type RouteGrouping, type SchedulerLimits, affinityHome, planTick, reuseBytesOf, workLeft,
} from "./policy";

/** One routing record per image eval (conditional row), for the trace recorder. */
export interface RoutingRecord {
  readonly requestId: string;
  readonly step: number;
  readonly label: number;
  readonly t: number;
  /** [layers, tokens, topK] */
  readonly experts: Int16Array;
  /** [layers, tokens, topK] */
  readonly weights: Float32Array;
}

export interface SchedulerServiceOptions {
  readonly bus: Bus;
  readonly subjects: Subjects;
  readonly manifest: Manifest;
  readonly pool: WorkerPool;
  readonly limits?: Partial<SchedulerLimits>;
  readonly onRouting?: (r: RoutingRecord) => void;
  /** Group requests with overlapping predicted experts when not all fit (default on). */
  readonly routeAwareBatching?: boolean;
  readonly now?: () => number;
  readonly log?: (msg: string) => void;
  /**
   * Synthetic ticks at the full budget when a plan comes into force and nothing is
   * queued (see warm-up-ticks.ts). Default 0 (none); the scheduler service runs DEFAULT_WARM_UP_TICKS.
   */
  readonly warmUpTicks?: number;
  /** Its own Prometheus figures (createSchedulerMetrics); none when unset. */
  readonly metrics?: SchedulerMetrics;
  /** Called once per request that leaves (the access log). */
  readonly onFinished?: (f: FinishedRequest) => void;
  /**
   * Where accepted requests are stored before they are acknowledged, and resumed from
   * when the scheduler starts (journal.ts). None: a request lives only here.
   */
  readonly journal?: RequestJournal;
}

/** Finished requests whose final events a `resend` can repeat: the last this many, for this long, within this many bytes. */
export const RECENT_FINISHED = { count: 256, ms: 60_000, bytes: 32 * 1024 * 1024 } as const;

export interface FinishedRequest {
  readonly requestId: string;
  /** "ok" or the status name. */
  readonly outcome: string;
  readonly images: number;
  readonly steps: number;
  readonly queueMs: number;
  readonly totalMs: number;
  readonly message?: string;
  /** Its trace, when tracing. */
  readonly traceId?: string;
}

export interface SchedulerService {
  start(): void;
  /**
   * Stops. With `drainMs`, first stops taking requests (other groups' schedulers get the
   * intake) and lets those it holds finish for up to `drainMs`; what is left then stays
   * in the journal for the group's next scheduler (without a journal it fails
   * UNAVAILABLE, and the client retries elsewhere).
   */
  stop(options?: { drainMs?: number }): Promise<void>;
  stats(): SchedulerStats;
  /**
   * Resolves once a plan is in force over `workers` workers (any, when omitted) and was
   * warmed up (or warm-up was skipped), with the scheduler's "ready: …" line.
   */
  whenReady(workers?: number): Promise<string>;
}

/**
 * Homes with at least this many images in a tick split them into two micro-batches, so
 * one's exchange overlaps the other's dense part. Two micro-batches double the messages
 * and model calls; after the data-plane work (codec, compute gate, less garbage) that
 * only pays at large ticks. 2 workers, alternating harness, ms per tick with one vs two:
 * 16 images per home 228/248 vs 251/272, 32 per home 398/420 vs 449/407, 48 per home
 * 579/638 vs 585/642, 64 per home 633/684 vs 613/566. (It was 8 when two measured 1.93/
 * 1.83/1.77 × the engine against 2.02/1.97/2.08 at 16 per home.)
 */
export const MICRO_BATCH_MIN_IMAGES = 48;

/**
 * Micro-batches per home for a tick: two when every home has MICRO_BATCH_MIN_IMAGES
 * images and the tick spans more than one worker. A lone worker has no exchange to hide
 * and two micro-batches only cost it: one worker at batch 32, experts all resident, 193-202
 * ms per step with two vs 174-183 with one (and under a 50 % expert budget the two halves'
 * runs of each layer compete for the cache).
 */
export function microBatchesFor(imagesPerHome: readonly number[], workers: number): number {
  return workers > 1 && imagesPerHome.length > 0 && Math.min(...imagesPerHome) >= MICRO_BATCH_MIN_IMAGES ? 2 : 1;
}

/** How often the scheduler publishes its figures for the gateways' /metrics. */
export const METRICS_INTERVAL_MS = 1000;

class Scheduler implements SchedulerService {
  private readonly requests = new Map<string, Live>();
  /** Requests being stored in the journal (admitted, not yet acknowledged): their work counts against the limits. */
  private readonly storing = new Map<string, number>();
  /** Final events of requests finished lately, for `resend` (oldest first). */
  private readonly recent = new Map<string, { readonly atMs: number; readonly bytes: number; readonly events: RequestEvent[] }>();
  private recentBytes = 0;
  /** Per worker, residual-reuse states it kept that will not be named again: sent with its next RunTick. */
  private reuseRelease = new Map<string, string[]>();
  private subs: Subscription[] = [];
  private seq = 0;
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private tick = 0;
  private completed = 0;
  private failed = 0;
  private lastTickRows = 0;
  private lastTickMs = 0;
  private evalCount = 0;
  private metricsTimer: NodeJS.Timeout | undefined;
  private stepCount = 0;
  private warmUpTicks = 0;
  private readonly readiness = createReadiness();
  /** Plan version the workers were last warmed under (or warm-up skipped for). */
  private warmedPlan: number | undefined;
  private readonly limits: SchedulerLimits;
  private readonly now: () => number;
  private readonly P: number;
  /** Placement-aware homing from each request's latest routing. */
  private readonly homing = affinityHome((id) => this.requests.get(id)?.affinity);
  /** Route-aware batching: group requests whose next experts overlap, bounded wait. */
  private readonly grouping: RouteGrouping = {
    predicted: (id) => this.predictedOf(id),
    waited: (id) => this.requests.get(id)?.waited ?? 0,
    maxWaitTicks: DEFAULT_MAX_WAIT_TICKS,
  };

  /** Experts of each class's first evals (for requests with no history yet). */
  private readonly priors: ClassPriors;

  /** A request's likely experts next eval: its latest routing, else its class prior. */
  private predictedOf(id: string): ReadonlySet<number> | undefined {
    const r = this.requests.get(id);
    return r ? (r.predicted ?? this.priors.prior(r.state.spec.label)) : undefined;
  }

  private readonly ch: Channels;

  constructor(private readonly o: SchedulerServiceOptions) {
    this.ch = channels(o.subjects);
    this.priors = createClassPriors(o.manifest.architecture.numLayers * o.manifest.moe.numExperts);
    this.limits = {
      maxTickRows: o.limits?.maxTickRows ?? DEFAULT_MAX_TICK_ROWS,
      maxQueued: o.limits?.maxQueued ?? DEFAULT_MAX_QUEUED,
      ...(o.limits?.maxRequestsPerTick ? { maxRequestsPerTick: o.limits.maxRequestsPerTick } : {}),
      ...(o.limits?.maxQueuedWork ? { maxQueuedWork: o.limits.maxQueuedWork } : {}),
      maxReuseBytes: o.limits?.maxReuseBytes ?? DEFAULT_MAX_REUSE_BYTES,
    };
    this.now = o.now ?? Date.now;
    const img = o.manifest.image;
    this.P = img.channels * img.height * img.width;
    o.metrics?.bind(() => this.stats());
    o.metrics?.bindReuseBytes(() => this.reuseBytes());
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const ch = this.ch;
    // The intake comes first: stop({ drainMs }) unsubscribes it alone.
    this.subs.push(serve(this.o.bus, ch.intake(this.o.manifest.name), (msg, headers) => this.onSubmit(msg, headers), { queue: SCHEDULER_QUEUE_GROUP }));
    this.subs.push(subscribe(this.o.bus, ch.cancel, (msg) => this.onCancel(msg.requestId)));
    this.subs.push(subscribe(this.o.bus, ch.resend, (msg) => this.onResend(msg.requestId)));
    this.metricsTimer = setInterval(() => publish(this.o.bus, ch.schedulerMetrics, this.stats()), METRICS_INTERVAL_MS);
    this.metricsTimer.unref?.();
    this.loop = this.resume().then(() => this.run());
  }

  /**
   * Takes up every request the journal holds for this group (a scheduler before this
   * one accepted them and died): each starts again from step 0, with the same seeded
   * noise, so its result is what it would have been. Retries while the journal cannot
   * be read (NATS restarting).
   */
  private async resume(): Promise<void> {
    const journal = this.o.journal;
    if (!journal) return;
    for (let delay = 200; this.running; delay = Math.min(delay * 2, 5000)) {
      try {
        const recs = await journal.list();
        let n = 0;
        for (const rec of recs) {
          if (this.requests.has(rec.submit.requestId)) continue;
          try {
            this.requests.set(rec.submit.requestId, admitRequest(rec.submit, rec.headers ?? {}, this.o.manifest, this.seq++, this.now()));
            n++;
          } catch (e) {
            // e.g. parameters this model no longer allows: tell the client instead of retrying forever
            const se = SwitchyardError.from(e);
            this.o.log?.(`cannot resume request ${rec.submit.requestId}: ${se.message}`);
            this.emit(rec.submit.requestId, { type: "error", code: se.code, message: se.rawMessage });
            void journal.remove(rec.submit.requestId).catch(() => undefined);
          }
        }
        if (n > 0) this.o.log?.(`resumed ${n} requests from the request journal (from step 0)`);
        return;
      } catch (e) {
        this.o.log?.(`cannot read the request journal, retrying in ${delay} ms: ${SwitchyardError.from(e).message}`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  async stop(options: { drainMs?: number } = {}): Promise<void> {
    if (options.drainMs && this.running) {
      this.subs.shift()?.unsubscribe(); // the intake (see start())
      const until = this.now() + options.drainMs;
      while (this.requests.size > 0 && this.now() < until) await new Promise((r) => setTimeout(r, 50));
    }
    this.running = false;
    clearInterval(this.metricsTimer);
    for (const s of this.subs) s.unsubscribe();
    this.subs = [];
    this.wake?.();
    await this.loop;
    if (this.o.journal) {
      // They stay in the journal: the group's next scheduler resumes them, and their gateways wait for it.
      if (this.requests.size > 0) this.o.log?.(`leaving ${this.requests.size} requests in the request journal for the group's next scheduler`);
      for (const r of this.requests.values()) r.span?.end();
      this.requests.clear();
      return;
    }
    for (const [id] of this.requests) this.fail(id, new SwitchyardError("scheduler is shutting down", Code.Unavailable));
  }

  whenReady(workers?: number): Promise<string> {
    return this.readiness.when(workers);
  }

  stats(): SchedulerStats {
    return {
      queued: this.requests.size, ticks: this.tick, completed: this.completed, failed: this.failed, lastTickRows: this.lastTickRows,
      lastTickMs: this.lastTickMs, evals: this.evalCount, steps: this.stepCount, workers: this.o.pool.members().length,
      warmUpTicks: this.warmUpTicks,
    };
  }

  /**
   * An accepted request, as the gateway resolved it (the contract parsed it: ids and
   * parameters are well-formed). It is stored in the journal before the reply, so that
   * an acknowledged request survives this scheduler.
   */
  private async onSubmit(msg: SubmitMessage, headers: Readonly<Record<string, string>> = {}): Promise<SubmitReply> {
    const id = msg.requestId;
    if (this.requests.has(id) || this.storing.has(id)) throw new SwitchyardError(`request_id ${JSON.stringify(id)} is already running`, Code.AlreadyExists, { field: "request_id" });
    if (this.requests.size + this.storing.size >= this.limits.maxQueued) {
      throw new SwitchyardError(`queue is full (${this.limits.maxQueued} requests); retry later`, Code.ResourceExhausted);
    }
    const acceptedAtMs = this.now();
    const live = admitRequest(msg, headers, this.o.manifest, this.seq++, acceptedAtMs);
    const max = this.limits.maxQueuedWork ?? DEFAULT_MAX_QUEUED_WORK;
    const asked = workLeft(live.state);
    if (this.requests.size + this.storing.size > 0) {
      let held = 0;
      for (const r of this.requests.values()) held += workLeft(r.state);
      for (const w of this.storing.values()) held += w;
      if (held + asked > max) {
        live.span?.end();
        throw new SwitchyardError(`queue holds ${held} of ${max} image-steps of work; this request adds ${asked} (images × steps); retry later`, Code.ResourceExhausted);
      }
    }
    if (this.o.journal) {
      this.storing.set(id, asked);
      try {
        await this.o.journal.store({ submit: msg, ...(Object.keys(headers).length > 0 ? { headers: { ...headers } } : {}), acceptedAtMs });
      } catch (e) {
        live.span?.end();
        throw e;
      } finally {
        this.storing.delete(id);
      }
      if (!this.running) {
        // stopped while storing: the next scheduler of the group resumes it from the journal
        live.span?.end();
        throw new SwitchyardError("scheduler is shutting down", Code.Unavailable);
      }
    }
    this.requests.set(id, live);
    this.wake?.();
    return { accepted: true, queuePosition: this.requests.size - 1 };
  }

  /** A gateway heard nothing of a request for a while: say where it is, or repeat its final events. */
  private onResend(id: string): void {
    const r = this.requests.get(id);
    if (r) return this.emit(id, { type: "status", step: r.state.step, steps: r.state.spec.params.steps });
    const done = this.recent.get(id);
    if (done) for (const e of done.events) this.emit(id, e);
  }

  /**
   * A request left (its final event is sent): out of the journal, and its final events
   * kept a while for `resend` (they may be lost if NATS goes away as they are sent).
   */
  private forget(id: string, events: RequestEvent[]): void {
    if (this.o.journal) void this.o.journal.remove(id).catch((e) => this.o.log?.(`could not remove request ${id} from the journal: ${SwitchyardError.from(e).message}`));
    const now = this.now();
    const bytes = events.reduce((n, e) => n + (e.type === "image" ? e.data.length : 64), 0);
    this.recent.set(id, { atMs: now, bytes, events });
    this.recentBytes += bytes;
    for (const [k, v] of this.recent) {
      if (this.recent.size <= RECENT_FINISHED.count && this.recentBytes <= RECENT_FINISHED.bytes && now - v.atMs <= RECENT_FINISHED.ms) break;
      this.recent.delete(k);
      this.recentBytes -= v.bytes;
    }
  }

  private onCancel(id: string): void {
    const r = this.requests.get(id);
    if (!r) return;
    r.cancelled = true; // takes effect before the next tick
    this.wake?.();
  }

  /**
   * Publishes a request's event. Never throws: the tick loop must not die for one
   * request's event (a bus refusal, e.g. a payload over its limit, or a lost connection).
   * A request whose event could not be sent fails with that error instead.
   */
  private emit(id: string, e: RequestEvent): void {
    try {
      publish(this.o.bus, this.ch.events(id), e);
    } catch (err) {
      const se = SwitchyardError.from(err, Code.Unavailable);
      this.o.log?.(`could not publish ${e.type} of request ${id}: ${se.message}`);
      if (e.type === "error") return;
      const failure = new SwitchyardError(`could not send the request's ${e.type} event: ${se.rawMessage}`, se.code, { cause: se });
      if (this.requests.has(id)) this.fail(id, failure);
      // finished already (its images or done event failed): still tell the client
      else this.emit(id, { type: "error", code: failure.code, message: failure.rawMessage });
    }
  }

  private fail(id: string, e: SwitchyardError): void {
    const r = this.requests.get(id);
    if (!r) return;
    this.requests.delete(id);
    this.releaseReuseOf(r);
    this.failed++;
    const now = this.now();
    this.o.metrics?.finished(codeToString(e.code), (now - r.state.acceptedAtMs) / 1000);
    r.span?.setStatus({ code: SpanStatusCode.ERROR, message: e.rawMessage });
    r.span?.end();
    this.o.onFinished?.({ requestId: id, outcome: codeToString(e.code), images: r.state.images.length, steps: r.state.spec.params.steps, queueMs: (r.state.startedAtMs ?? now) - r.state.acceptedAtMs, totalMs: now - r.state.acceptedAtMs, message: e.rawMessage, ...traceIdOf(r) });
    const event: RequestEvent = { type: "error", code: e.code, message: e.rawMessage };
    this.emit(id, event);
    this.forget(id, [event]);
  }

  private async run(): Promise<void> {
    while (this.running) {
      for (const [id, r] of this.requests) if (r.cancelled) this.fail(id, new SwitchyardError("request was cancelled", Code.Canceled));
      try {
        await this.o.pool.prepare?.();
      } catch (e) {
        this.o.log?.(`plan change failed, retrying: ${SwitchyardError.from(e).message}`);
        await this.idle(500);
        continue;
      }
      const members = this.o.pool.members();
      if (members.length > 0 && this.o.pool.planVersion() !== this.warmedPlan) {
        const v = (this.warmedPlan = this.o.pool.planVersion());
        // Only while nothing waits: queued requests are served on a cold plan rather than delayed.
        const warm = this.requests.size === 0 && (this.o.warmUpTicks ?? 0) > 0 ? await this.warmUp(members) : "not warmed up";
        // Launchers wait for this line (startProcessCluster) or for whenReady().
        const line = `ready: plan v${v} over ${members.length} workers, ${warm}`;
        this.o.log?.(line);
        this.readiness.announce(members.length, line);
      }
      const plan = planTick(
        [...this.requests.values()].map((r) => r.state),
        members,
        this.limits,
        this.now(),
        this.homing,
        this.o.routeAwareBatching === false ? undefined : this.grouping,
      );
      for (const id of plan.bypassed) this.requests.get(id)!.waited++;
      for (const it of plan.items) this.requests.get(it.requestId)!.waited = 0;
      for (const id of plan.expired) this.fail(id, new SwitchyardError("deadline exceeded before the request finished", Code.DeadlineExceeded));
      if (plan.items.length === 0) {
        await this.idle(members.length === 0 && this.requests.size > 0 ? 200 : 1000);
        continue;
      }
      // One span per tick, in the trace of its oldest request, linking every request in it;
      // the workers' RunTick and Exchange spans continue it.
      const inTick = [...new Set(plan.items.map((it) => it.requestId))].map((id) => this.requests.get(id)).filter((r): r is Live => !!r);
      const first = inTick.reduce<Live | undefined>((a, r) => (!a || r.state.acceptedAtMs < a.state.acceptedAtMs ? r : a), undefined);
      const links = inTick.flatMap((r) => (r.span ? [{ context: r.span.spanContext() }] : []));
      await inSpan("scheduler.tick", { ...(first?.ctx ? { parent: first.ctx } : {}), attributes: { "switchyard.tick": this.tick + 1, "switchyard.rows": plan.items.reduce((n, i) => n + i.rows, 0), "switchyard.requests": inTick.length }, links }, () => this.execute(plan.items, plan.homes));
    }
  }

  /**
   * What every RunTick of a tick shares: its homes, the plan in force, and the micro-
   * batches per home (two for large ticks, so one's exchange overlaps the other's dense
   * part). `targets`: the workers the tick is sent to.
   */
  private tickFrame(tick: number, homes: readonly string[], imagesPerHome: readonly number[], targets: readonly string[]): TickFrame {
    const owners = this.o.pool.owners();
    const replicas = this.o.pool.replicas?.();
    const microBatches = microBatchesFor(imagesPerHome, new Set([...targets, ...owners]).size);
    return {
      tick, homes, planVersion: this.o.pool.planVersion(), owners,
      ...(replicas?.some((r) => r.length > 0) ? { replicas } : {}),
      ...(microBatches > 1 ? { microBatches } : {}),
    };
  }

  /** Runs warm-up ticks over `members` until done or a request arrives; says what it did. */
  private warmUp(members: readonly string[]): Promise<string> {
    return runWarmUpTicks({
      pool: this.o.pool, manifest: this.o.manifest, maxTickRows: this.limits.maxTickRows, ticks: this.o.warmUpTicks ?? 0, members, now: this.now,
      idle: () => this.requests.size === 0 && this.running,
      frame: (homes, perHome) => this.tickFrame(++this.tick, homes, perHome, members),
      ran: () => void this.warmUpTicks++,
    });
  }

  private idle(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      const poolChanged = this.o.pool.changed(ms).then(done);
      void poolChanged;
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    }).finally(() => (this.wake = undefined));
  }

  /** One tick: decide (what each worker is sent), apply (the calls), update (fold the results), then publish. */
  private async execute(items: ReturnType<typeof planTick>["items"], homes: ReadonlyMap<string, string>): Promise<void> {
    const t0 = this.now();
    const tick = ++this.tick;
    this.markStarted(homes, t0);
    const m = this.o.manifest;
    const L = m.architecture.numLayers;
    const byHome = itemsByHome(items);
    const release = this.reuseRelease;
    this.reuseRelease = new Map();
    const built = buildTick(
      byHome, (id) => this.requests.get(id)!.state, (id) => this.predictedOf(id), this.o.pool.members(), L * m.moe.numExperts,
      (targets) => this.tickFrame(tick, [...byHome.keys()], [...byHome.values()].map((v) => v.length), targets),
      (w) => release.get(w),
    );
    // Workers not called this tick hear theirs with a later one.
    for (const [w, keys] of release) if (!built.calls.some((c) => c.home === w) && this.o.pool.members().includes(w)) this.releaseReuse(w, keys);
    const rows = items.reduce((s, i) => s + i.rows, 0);
    const outcome = await runTick(this.o.pool, built.calls);
    if (!outcome.ok) {
      // Nothing is applied: every request resumes from its last completed eval.
      this.o.metrics?.tick((this.now() - t0) / 1000, rows, false);
      // A home that failed because a peer died reports UNAVAILABLE too; drop only workers that no longer answer.
      for (const h of outcome.failedHomes) {
        this.o.log?.(`tick ${tick}: worker ${h} failed: ${outcome.reason.message}`);
        await this.o.pool.markFailed(h, outcome.reason);
      }
      for (const [w, keys] of carriedReleases(built.calls, this.o.pool.members())) this.releaseReuse(w, keys);
      return;
    }
    const ms = this.now() - t0;
    this.lastTickMs = ms;
    this.lastTickRows = rows;
    this.o.metrics?.tick(ms / 1000, rows, true);
    const frame = built.calls[0]!.req;
    const u = updateRequests(this.requests, outcome.results, built.evals, {
      layers: L, experts: m.moe.numExperts, tokensTopK: m.architecture.tokens * m.moe.topK, imageSize: this.P,
      owners: frame.owners, replicas: frame.replicas, tickMs: ms, tickItems: items.length, priors: this.priors,
      reuseBytes: this.reuseBytes(), maxReuseBytes: this.limits.maxReuseBytes ?? DEFAULT_MAX_REUSE_BYTES,
      ...(this.o.onRouting ? { onRouting: this.o.onRouting } : {}),
    });
    if (u.reuse.reused + u.reuse.full + u.deferred > 0) this.o.metrics?.reuse(u.reuse.reused, u.reuse.full, u.reuse.dropped, u.deferred);
    for (const [w, keys] of u.release) this.releaseReuse(w, keys);
    this.evalCount += u.evals;
    this.stepCount += u.steps;
    for (const { requestId, ...e } of u.progress) this.emit(requestId, { type: "progress", ...e });
    for (const id of u.finished) this.finish(id, this.requests.get(id)!);
  }

  private releaseReuse(worker: string, keys: readonly string[]): void {
    const list = this.reuseRelease.get(worker);
    if (list) list.push(...keys);
    else this.reuseRelease.set(worker, [...keys]);
  }

  /** A request leaving: the states workers kept for its images will not be named again. */
  private releaseReuseOf(r: Live): void {
    r.state.images.forEach((img, i) => img.reuseAt && this.releaseReuse(img.reuseAt.worker, [reuseKey(r.state.spec.id, i)]));
  }

  /** Residual-reuse state held over every live request, bytes. */
  private reuseBytes(): number {
    let n = 0;
    for (const r of this.requests.values()) n += reuseBytesOf(r.state);
    return n;
  }

  /** Requests homed in this tick for the first time start now (queue time ends). */
  private markStarted(homes: ReadonlyMap<string, string>, t0: number): void {
    for (const [id, home] of homes) {
      const r = this.requests.get(id);
      if (!r) continue;
      if (r.state.startedAtMs === undefined) {
        this.o.metrics?.started((t0 - r.state.acceptedAtMs) / 1000);
        if (r.ctx) tracer().startSpan("scheduler.queue", { startTime: r.state.acceptedAtMs }, r.ctx).end(t0);
      }
      r.state = { ...r.state, home, startedAtMs: r.state.startedAtMs ?? t0 };
    }
  }

  private finish(id: string, r: Live): void {
    this.requests.delete(id);
    this.releaseReuseOf(r);
    this.completed++;
    const events: RequestEvent[] = r.state.images.map((img, index) => ({ type: "image", index, data: f32ToBase64(img.sampler.x) }));
    for (const e of events) this.emit(id, e);
    const now = this.now();
    const done = doneEvent(r, now);
    events.push(done);
    this.o.metrics?.finished("ok", done.totalMs / 1000);
    r.span?.end();
    this.o.onFinished?.({ requestId: id, outcome: "ok", images: r.state.images.length, steps: r.state.spec.params.steps, queueMs: done.queueMs, totalMs: done.totalMs, ...traceIdOf(r) });
    this.emit(id, done);
    this.forget(id, events);
  }
}

export function createSchedulerService(options: SchedulerServiceOptions): SchedulerService {
  return new Scheduler(options);
}
