import {
  type Bus, type Channels, type RequestEvent, SCHEDULER_QUEUE_GROUP, type SchedulerStats, type SubmitMessage, type SubmitReply, type Subjects, type Subscription, type WorkerPool,
  channels, copiesOf, encodePrediction, expertsUsedBy, f32ToBase64, publish, serve, subscribe,
} from "@switchyard/contract";
import { Code, SwitchyardError, codeToString } from "@switchyard/errors";
import { type Manifest, checkResolvedParams } from "@switchyard/manifest";
import type { TickRequestMsg } from "@switchyard/proto";
import { currentT, gaussianNoise, nextEval, previewX0 } from "@switchyard/sampler";
import { type ClassPriors, createClassPriors } from "@switchyard/expert-cache";
import { warmUpItems } from "./warm-up-ticks";
import type { SchedulerMetrics } from "./metrics";
import { type Context, ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, extractContext, inSpan, trace, tracer } from "@switchyard/telemetry";
import {
  DEFAULT_MAX_QUEUED, DEFAULT_MAX_TICK_ROWS, DEFAULT_MAX_WAIT_TICKS, type RequestState, type RouteGrouping, type SchedulerLimits, admit, affinityHome,
  applyVelocity, isFinished, planTick,
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
}

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
   * intake) and lets those it holds finish for up to `drainMs`; what is left then fails
   * UNAVAILABLE (the client retries elsewhere).
   */
  stop(options?: { drainMs?: number }): Promise<void>;
  stats(): SchedulerStats;
  /**
   * Resolves once a plan is in force over `workers` workers (any, when omitted) and was
   * warmed up (or warm-up was skipped), with the scheduler's "ready: …" line.
   */
  whenReady(workers?: number): Promise<string>;
}

interface Live {
  state: RequestState;
  readonly msg: SubmitMessage;
  computeMs: number;
  /** Wall time of the ticks it took part in, ms (each tick once). */
  tickMs: number;
  cancelled: boolean;
  /** x̂0 = x_t − t·v of each image at its latest eval (previews). */
  readonly preview: (Float32Array | undefined)[];
  /** Assignments of its latest eval served by each worker (affinity homing). */
  affinity: Map<string, number> | undefined;
  /** Experts (global ids) of its latest eval: the prediction for the next (route-aware batching). */
  predicted: Set<number> | undefined;
  /** Ticks route-aware grouping held it back although its priority would have run it. */
  waited: number;
  /** Its span here (admission to end), continuing the gateway's trace; no-op when tracing is off. */
  span?: Span;
  ctx?: Context;
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
  private readonly readyWaiters: { workers: number | undefined; resolve: (line: string) => void }[] = [];
  private lastReady: { workers: number; line: string } | undefined;
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
    };
    this.now = o.now ?? Date.now;
    const img = o.manifest.image;
    this.P = img.channels * img.height * img.width;
    o.metrics?.bind(() => this.stats());
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const ch = this.ch;
    // The intake comes first: stop({ drainMs }) unsubscribes it alone.
    this.subs.push(serve(this.o.bus, ch.intake(this.o.manifest.name), (msg, headers) => this.onSubmit(msg, headers), { queue: SCHEDULER_QUEUE_GROUP }));
    this.subs.push(subscribe(this.o.bus, ch.cancel, (msg) => this.onCancel(msg.requestId)));
    this.metricsTimer = setInterval(() => publish(this.o.bus, ch.schedulerMetrics, this.stats()), METRICS_INTERVAL_MS);
    this.metricsTimer.unref?.();
    this.loop = this.run();
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
    for (const [id] of this.requests) this.fail(id, new SwitchyardError("scheduler is shutting down", Code.Unavailable));
  }

  whenReady(workers?: number): Promise<string> {
    const r = this.lastReady;
    if (r && (workers === undefined || r.workers === workers)) return Promise.resolve(r.line);
    return new Promise((resolve) => this.readyWaiters.push({ workers, resolve }));
  }

  stats(): SchedulerStats {
    return {
      queued: this.requests.size, ticks: this.tick, completed: this.completed, failed: this.failed, lastTickRows: this.lastTickRows,
      lastTickMs: this.lastTickMs, evals: this.evalCount, steps: this.stepCount, workers: this.o.pool.members().length,
      warmUpTicks: this.warmUpTicks,
    };
  }

  /** An accepted request, as the gateway resolved it (the contract parsed it: ids and parameters are well-formed). */
  private async onSubmit(msg: SubmitMessage, headers: Readonly<Record<string, string>> = {}): Promise<SubmitReply> {
    if (this.requests.has(msg.requestId)) throw new SwitchyardError(`request_id ${JSON.stringify(msg.requestId)} is already running`, Code.AlreadyExists, { field: "request_id" });
    if (this.requests.size >= this.limits.maxQueued) {
      throw new SwitchyardError(`queue is full (${this.limits.maxQueued} requests); retry later`, Code.ResourceExhausted);
    }
    // Resolved at the gateway; checked here against this model (a bus client may not be a gateway).
    const p = checkResolvedParams(msg.params, this.o.manifest);
    const noise = Array.from({ length: p.count }, (_, i) => gaussianNoise(p.seed, i, this.P));
    const state = admit(
      { id: msg.requestId, params: { sampler: p.sampler, steps: p.steps, shift: p.shift }, label: p.label, guidance: p.guidance, priority: msg.priority, deadlineMs: msg.deadlineMs ?? undefined, noise },
      this.seq++,
      this.now(),
    );
    // The gateway's trace context, from the NATS headers (or a `trace` field of the message).
    const carrier = headers.traceparent ? headers : msg.trace;
    const parent = carrier ? extractContext(carrier as Record<string, string>, ROOT_CONTEXT) : ROOT_CONTEXT;
    const span = tracer().startSpan("scheduler.request", { kind: SpanKind.CONSUMER, attributes: { "switchyard.request_id": msg.requestId, "switchyard.images": p.count, "switchyard.steps": p.steps } }, parent);
    this.requests.set(msg.requestId, { state, msg, computeMs: 0, tickMs: 0, cancelled: false, preview: new Array(p.count), affinity: undefined, predicted: undefined, waited: 0, span, ctx: trace.setSpan(parent, span) });
    this.wake?.();
    return { accepted: true, queuePosition: this.requests.size - 1 };
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
    this.failed++;
    const now = this.now();
    this.o.metrics?.finished(codeToString(e.code), (now - r.state.acceptedAtMs) / 1000);
    r.span?.setStatus({ code: SpanStatusCode.ERROR, message: e.rawMessage });
    r.span?.end();
    this.o.onFinished?.({ requestId: id, outcome: codeToString(e.code), images: r.state.images.length, steps: r.state.spec.params.steps, queueMs: (r.state.startedAtMs ?? now) - r.state.acceptedAtMs, totalMs: now - r.state.acceptedAtMs, message: e.rawMessage, ...traceIdOf(r) });
    this.emit(id, { type: "error", code: e.code, message: e.rawMessage });
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
        this.lastReady = { workers: members.length, line };
        for (const w of this.readyWaiters.splice(0)) {
          if (w.workers === undefined || w.workers === members.length) w.resolve(line);
          else this.readyWaiters.push(w);
        }
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
  private tickFrame(tick: number, homes: readonly string[], imagesPerHome: readonly number[], targets: readonly string[]): Omit<TickRequestMsg, "items"> {
    const owners = this.o.pool.owners();
    const replicas = this.o.pool.replicas?.();
    const microBatches = microBatchesFor(imagesPerHome, new Set([...targets, ...owners]).size);
    return {
      tick, homes, planVersion: this.o.pool.planVersion(), owners,
      ...(replicas?.some((r) => r.length > 0) ? { replicas } : {}),
      ...(microBatches > 1 ? { microBatches } : {}),
    };
  }

  /** Runs warm-up ticks over `members` until done or a request arrives; results are dropped. Says what it did. */
  private async warmUp(members: readonly string[]): Promise<string> {
    const t0 = this.now();
    const byHome = warmUpItems(this.o.manifest, this.limits.maxTickRows, members);
    const homes = [...byHome.keys()].filter((h) => byHome.get(h)!.length > 0);
    let done = 0;
    const version = this.o.pool.planVersion();
    for (; done < (this.o.warmUpTicks ?? 0) && this.requests.size === 0 && this.running; done++) {
      // A tick boundary: a worker that joined meanwhile makes a new plan, warmed up in its turn.
      if (done > 0) await this.o.pool.prepare?.();
      if (this.o.pool.planVersion() !== version) return `warm-up cut short by plan v${this.o.pool.planVersion()}`;
      const frame = this.tickFrame(++this.tick, homes, homes.map((h) => byHome.get(h)!.length), members);
      const settled = await Promise.allSettled(homes.map((h) => this.o.pool.runTick(h, { ...frame, items: byHome.get(h)! })));
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
      this.warmUpTicks++;
      if (failed) {
        // The next real tick finds out who is gone and re-plans.
        return `warm-up tick failed (${SwitchyardError.from(failed.reason).message})`;
      }
    }
    return `warmed up: ${done} ticks of ${homes.reduce((s, h) => s + byHome.get(h)!.length, 0)} images in ${this.now() - t0} ms`;
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

  private async execute(items: ReturnType<typeof planTick>["items"], homes: ReadonlyMap<string, string>): Promise<void> {
    const t0 = this.now();
    const tick = ++this.tick;
    for (const [id, home] of homes) {
      const r = this.requests.get(id);
      if (!r) continue;
      if (r.state.startedAtMs === undefined) {
        this.o.metrics?.started((t0 - r.state.acceptedAtMs) / 1000);
        if (r.ctx) tracer().startSpan("scheduler.queue", { startTime: r.state.acceptedAtMs }, r.ctx).end(t0);
      }
      r.state = { ...r.state, home, startedAtMs: r.state.startedAtMs ?? t0 };
    }
    const byHome = new Map<string, typeof items>();
    for (const it of items) byHome.set(it.home, [...(byHome.get(it.home) ?? []), it]);
    const homeIds = [...byHome.keys()].sort();
    const evals = new Map<string, { x: Float32Array; t: number }>();
    // Every worker hears of the tick (owners without images too): the prediction of the
    // experts it will need lets each prefetch ahead of compute.
    const m = this.o.manifest;
    const predicted = encodePrediction(items.map((it) => this.predictedOf(it.requestId)), m.architecture.numLayers * m.moe.numExperts);
    const targets = predicted ? [...new Set([...homeIds, ...this.o.pool.members()])].sort() : homeIds;
    const frame = this.tickFrame(tick, homeIds, homeIds.map((h) => byHome.get(h)!.length), targets);
    const { owners, replicas } = frame;
    const calls = targets.map(async (home) => {
      const mine = byHome.get(home) ?? [];
      const req: TickRequestMsg = {
        ...frame,
        ...(predicted ? { predicted } : {}),
        items: mine.map((it) => {
          const r = this.requests.get(it.requestId)!;
          const s = r.state.images[it.imageIndex]!.sampler;
          const e = nextEval(s);
          evals.set(`${it.requestId}/${it.imageIndex}`, e);
          return { requestId: it.requestId, imageIndex: it.imageIndex, x: e.x, t: e.t, label: r.state.spec.label, guidance: r.state.spec.guidance };
        }),
      };
      try {
        return { home, mine, res: await this.o.pool.runTick(home, req) };
      } catch (e) {
        throw Object.assign(SwitchyardError.from(e, Code.Unavailable), { home });
      }
    });
    const settled = await settleOrFirstFailure(calls);
    const failures = settled.filter((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failures.length > 0) {
      // Nothing is applied: every request resumes from its last completed eval.
      this.o.metrics?.tick((this.now() - t0) / 1000, items.reduce((s, i) => s + i.rows, 0), false);
      const failedHomes = new Set(failures.map((f) => (f.reason as { home?: string }).home).filter((h): h is string => !!h));
      // A home that failed because a peer died reports UNAVAILABLE too; drop only workers that no longer answer.
      for (const h of failedHomes) {
        this.o.log?.(`tick ${tick}: worker ${h} failed: ${(failures[0]!.reason as Error).message}`);
        await this.o.pool.markFailed(h, SwitchyardError.from(failures[0]!.reason));
      }
      return;
    }
    const ms = this.now() - t0;
    this.lastTickMs = ms;
    this.lastTickRows = items.reduce((s, i) => s + i.rows, 0);
    this.o.metrics?.tick(ms / 1000, this.lastTickRows, true);
    const L = m.architecture.numLayers;
    const TK = m.architecture.tokens * m.moe.topK;
    const touched = new Set<string>();
    for (const s of settled) {
      if (s.status !== "fulfilled") continue;
      const { mine, res } = s.value;
      mine.forEach((it, j) => {
        const r = this.requests.get(it.requestId);
        if (!r) return; // cancelled meanwhile
        const v = res.velocities.subarray(j * this.P, (j + 1) * this.P);
        const ev = evals.get(`${it.requestId}/${it.imageIndex}`)!;
        const before = r.state.images[it.imageIndex]!.sampler.step;
        const a = applyVelocity(r.state, it.imageIndex, v);
        r.state = a.state;
        this.evalCount++;
        if (a.stepCompleted) this.stepCount++;
        r.computeMs += ms / Math.max(1, items.length);
        // affinity: which worker served each of this image's assignments
        const E = m.moe.numExperts;
        const firstEval = r.predicted === undefined;
        if (!touched.has(it.requestId)) {
          touched.add(it.requestId);
          r.tickMs += ms;
          r.affinity = new Map();
          r.predicted = new Set();
        }
        const affinity = r.affinity!;
        const predicted = r.predicted!;
        const routing = res.routing.subarray(j * L * TK, (j + 1) * L * TK);
        for (let l = 0; l < L; l++)
          for (let q = 0; q < TK; q++) {
            const g = l * E + routing[l * TK + q]!;
            predicted.add(g);
            if (owners[g] !== undefined) for (const w of copiesOf({ owners, replicas }, g)) affinity.set(w, (affinity.get(w) ?? 0) + 1);
          }
        // Both CFG branches' experts when the worker reports them (the unconditional row routes differently).
        for (const g of expertsUsedBy(res.expertsUsed, L * E, j) ?? []) predicted.add(g);
        if (firstEval) this.priors.observe(r.state.spec.label, predicted);
        this.o.onRouting?.({ requestId: it.requestId, step: before, label: r.state.spec.label, t: ev.t, experts: res.routing.subarray(j * L * TK, (j + 1) * L * TK), weights: res.routingWeights.subarray(j * L * TK, (j + 1) * L * TK) });
        const interval = r.msg.previewInterval;
        if (interval > 0) r.preview[it.imageIndex] = previewX0(ev.x, ev.t, v);
        if (a.stepCompleted) {
          const step = r.state.step;
          const previews =
            interval > 0 && (step % interval === 0 || step === r.state.spec.params.steps)
              ? r.preview.map((x, i) => f32ToBase64(x ?? r.state.images[i]!.sampler.x))
              : undefined;
          this.emit(it.requestId, { type: "progress", step, steps: r.state.spec.params.steps, t: currentT(r.state.images[0]!.sampler), ...(previews ? { previews } : {}) });
        }
        if (isFinished(r.state)) this.finish(it.requestId, r);
      });
    }
  }

  private finish(id: string, r: Live): void {
    this.requests.delete(id);
    this.completed++;
    r.state.images.forEach((img, index) => this.emit(id, { type: "image", index, data: f32ToBase64(img.sampler.x) }));
    const now = this.now();
    const started = r.state.startedAtMs ?? now;
    this.o.metrics?.finished("ok", (now - r.state.acceptedAtMs) / 1000);
    r.span?.end();
    this.o.onFinished?.({ requestId: id, outcome: "ok", images: r.state.images.length, steps: r.state.spec.params.steps, queueMs: started - r.state.acceptedAtMs, totalMs: now - r.state.acceptedAtMs, ...traceIdOf(r) });
    this.emit(id, {
      type: "done",
      queueMs: started - r.state.acceptedAtMs,
      computeMs: r.computeMs,
      tickMs: r.tickMs,
      totalMs: now - r.state.acceptedAtMs,
      evals: r.state.images[0]!.sampler.evals,
      seed: r.msg.params.seed,
    });
  }
}

/** `{ traceId }` of a request's span when it is being traced. */
function traceIdOf(r: Live): { traceId?: string } {
  const c = r.span?.spanContext();
  return c && c.traceFlags & 1 ? { traceId: c.traceId } : {};
}

/**
 * Like Promise.allSettled, but returns as soon as one promise rejects: when a home dies
 * the others block on its rows until their exchange timeout, and nothing of a failed
 * tick is applied anyway. Abandoned calls fail in the workers on their own.
 */
function settleOrFirstFailure<T>(ps: Promise<T>[]): Promise<PromiseSettledResult<T>[]> {
  return new Promise((resolve) => {
    const out: PromiseSettledResult<T>[] = new Array(ps.length);
    let left = ps.length;
    let done = false;
    if (left === 0) resolve(out);
    ps.forEach((p, i) =>
      p.then(
        (value) => {
          out[i] = { status: "fulfilled", value };
          if (--left === 0 && !done) resolve(out);
        },
        (reason: unknown) => {
          out[i] = { status: "rejected", reason };
          if (!done) {
            done = true;
            resolve(out.filter((x) => x !== undefined));
          }
        },
      ),
    );
  });
}

export function createSchedulerService(options: SchedulerServiceOptions): SchedulerService {
  return new Scheduler(options);
}
