import type { ModelParts } from "@switchyard/model";

/**
 * ONNX Runtime (Node binding) runs a session on the calling thread: while a worker
 * computes, its event loop stands still, and so does every gRPC protocol step it owes
 * its peers (an answer's data, then its trailers, each a separate loop turn). Measured
 * on a 2-worker tick at batch 32: an owner's answer reached the home 14-17 ms after the
 * experts finished, stuck behind the owner's next dense calls; the home idled meanwhile.
 *
 * The gate runs the model's calls one at a time, lets the event loop turn before each
 * (so pending network work goes out first), and picks the most urgent waiting call:
 * experts — which every home of the tick waits for — before the shared expert, before
 * this worker's own dense parts. Same-priority calls keep their order.
 */
export const DEFAULT_GATE_TURNS = 1;

/** Lower runs first. */
export const GATE_PRIORITY = { expert: 0, shared: 1, dense: 2 } as const;

export interface GateOptions {
  /** Event-loop turns before each call (default DEFAULT_GATE_TURNS). */
  readonly turns?: number;
}

interface Job {
  readonly priority: number;
  readonly start: () => Promise<void>;
}

const turn = () => new Promise<void>((r) => setImmediate(r));

/** A scheduler of exclusive, prioritized async calls. */
export interface ComputeGate {
  run<R>(priority: number, call: () => Promise<R>): Promise<R>;
  /** Calls waiting (not counting the running one). */
  readonly waiting: number;
}

export function createComputeGate(options: GateOptions = {}): ComputeGate {
  const turns = options.turns ?? DEFAULT_GATE_TURNS;
  if (!Number.isInteger(turns) || turns < 0) throw new RangeError(`turns must be an integer >= 0, got ${turns}`);
  const queue: Job[] = [];
  let running = false;
  const pump = async () => {
    running = true;
    try {
      while (queue.length > 0) {
        for (let i = 0; i < turns; i++) await turn();
        let best = 0;
        for (let i = 1; i < queue.length; i++) if (queue[i]!.priority < queue[best]!.priority) best = i;
        const [job] = queue.splice(best, 1);
        await job!.start();
      }
    } finally {
      running = false;
    }
  };
  return {
    run<R>(priority: number, call: () => Promise<R>): Promise<R> {
      return new Promise<R>((resolve, reject) => {
        queue.push({ priority, start: () => Promise.resolve().then(call).then(resolve, reject) });
        if (!running) void pump();
      });
    },
    get waiting() {
      return queue.length;
    },
  };
}

/**
 * `parts` with every model call through `gate` (experts first, then shared, then dense).
 * The shared expert bypasses the gate while it runs on a thread of its own
 * (sharedOffThread). A layer's grouped expert call (runExperts) stays one call: without it every owner ran
 * its experts one by one, 16 calls per layer instead of one (#17: at batch 32 a worker's
 * expert time was 29 ms per tick over 88 calls).
 */
export function gatedParts(parts: ModelParts, gate: ComputeGate): ModelParts {
  const P = GATE_PRIORITY;
  const grouped = parts.runExperts?.bind(parts);
  return {
    ...(grouped ? { runExperts: (...a: Parameters<typeof grouped>) => gate.run(P.expert, () => grouped(...a)) } : {}),
    manifest: parts.manifest,
    embed: (...a) => gate.run(P.dense, () => parts.embed(...a)),
    dense: (...a) => gate.run(P.dense, () => parts.dense(...a)),
    expert: (...a) => gate.run(P.expert, () => parts.expert(...a)),
    // On a thread of its own, the shared expert holds up nothing here: it runs beside the gate's calls.
    shared: (l, u, rows) => (parts.sharedOffThread?.(rows) ? parts.shared(l, u, rows) : gate.run(P.shared, () => parts.shared(l, u, rows))),
    ...(parts.sharedOffThread ? { sharedOffThread: (rows: number) => parts.sharedOffThread!(rows) } : {}),
    final: (...a) => gate.run(P.dense, () => parts.final(...a)),
    hasExpert: (l, e) => parts.hasExpert(l, e),
    loadExpert: (l, e) => parts.loadExpert(l, e),
    unloadExpert: (l, e) => parts.unloadExpert(l, e),
    close: () => parts.close(),
  };
}
