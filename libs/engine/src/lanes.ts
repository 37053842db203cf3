import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { Code, SwitchyardError } from "@switchyard/errors";
import { type ExecutionProvider, type ThreadReply, createOnnxModel, threadCalls } from "@switchyard/model";
import { needsUnconditional } from "@switchyard/sampler";
import { type Engine, type EvalItem, type ForwardResult, checkItems, concat, createEngine, stepWith } from "./engine";
import type { LayerRouting } from "./routing";

/**
 * The in-process engine on several lanes: a big batch is cut into contiguous groups of
 * images, and each group runs on a lane of its own — the calling thread, and worker
 * threads, each with the model's sessions on one share of the cores. The images of a
 * batch are independent (rows are combined only within an image), so the lanes' results
 * laid end to end are bitwise one engine's (lanes.test.ts checks it).
 *
 * Why: on this repository's 2 cores, ONNX Runtime's intra-op threads scale poorly on the
 * small expert matmuls, and the engine's own JavaScript (routing, weighted sums) runs on
 * one thread between the model calls. Two lanes with one thread each keep both cores busy
 * with whole forwards instead (measured before this was built: two processes of 16 images
 * with one thread each took 83.0/82.0 and 77.9/81.3 ms a step side by side, one of 32
 * images with the default threads 112.8 and 126.4 ms).
 *
 * Each lane holds its own copy of the model's sessions: with the bundled model, run from
 * the sources, the process's memory grew by 65 MB with 1 lane, 153 MB with 2, 236 MB
 * with 3 (~85 MB a lane thread: its own JavaScript heap and loader, and the sessions).
 * A lane whose thread dies is dropped with a warning (SWITCHYARD_ENGINE_LANE) and its
 * group runs on the calling thread: nothing accepted is lost.
 */
export interface LaneEngine extends Engine {
  /** Lanes in use (the calling thread's included); fewer after a lane's thread died. */
  readonly lanes: number;
  close(): Promise<void>;
}

/** One lane on a thread: forwards of the whole engine, one at a time. */
export interface Lane {
  forward(items: readonly EvalItem[]): Promise<ForwardResult>;
  readonly alive: boolean;
  close(): Promise<void>;
}

export interface LaneOptions {
  readonly dir: string;
  /** Intra-op threads of the lane's sessions. */
  readonly threads: number;
  readonly maxBatchRows?: number;
  readonly executionProvider?: ExecutionProvider;
}

export interface LaneEngineOptions {
  /** Model directory. */
  readonly dir: string;
  /** Lanes, the calling thread's included (default DEFAULT_LANES). */
  readonly lanes?: number;
  /** Intra-op threads per lane (default: the cores shared out, at least 1). */
  readonly threadsPerLane?: number;
  /** A batch is cut only into groups of at least this many model rows (default DEFAULT_MIN_LANE_ROWS). */
  readonly minRowsPerLane?: number;
  /** Largest forward batch in rows per lane (see EngineOptions.maxBatchRows). */
  readonly maxBatchRows?: number;
  /** Where every lane's ONNX Runtime sessions run (default "cpu"; on one GPU, one lane). */
  readonly executionProvider?: ExecutionProvider;
  /** Starts a lane's thread (default: startLaneThread; tests put one that dies behind it). */
  readonly startLane?: (options: LaneOptions) => Promise<Lane>;
}

/** A lane per core, up to 4. */
export const DEFAULT_LANES = Math.max(1, Math.min(4, availableParallelism()));

/**
 * A batch is cut only into groups of at least this many model rows: a lane's forward costs
 * a message each way and its fixed per-call costs again. Lanes ÷ one engine on 2 cores,
 * alternating in one process, with guidance (2 rows an image): groups of 2
 * rows (batch 2) 1.12; of 3–4 rows (batch 3, 4) 1.00 and 0.90; batch 6 0.88, 8 0.83–0.88.
 */
export const DEFAULT_MIN_LANE_ROWS = 3;

/**
 * Where to cut: item boundaries [0, ..., n] of at most `lanes` contiguous groups with
 * about equal rows, each of at least `minRows` rows (one group when the batch is smaller).
 */
export function laneCuts(itemRows: readonly number[], lanes: number, minRows: number): number[] {
  const n = itemRows.length;
  let total = 0;
  for (const r of itemRows) total += r;
  const k = Math.max(1, Math.min(lanes, n, Math.floor(total / Math.max(1, minRows))));
  const cuts = [0];
  let acc = 0;
  for (let i = 0; i < n - 1 && cuts.length < k; i++) {
    acc += itemRows[i]!;
    if (acc >= (total * cuts.length) / k) cuts.push(i + 1);
  }
  cuts.push(n);
  return cuts;
}

/** The groups' results laid end to end: bitwise what one forward over all the items gives. */
export function joinLaneResults(results: readonly ForwardResult[], tokens: number, wallMs: number): ForwardResult {
  if (results.length === 1) return results[0]!;
  const layers = results[0]!.routing.length;
  const rows: number[][] = [];
  let offset = 0;
  for (const r of results) {
    for (const rs of r.rows) rows.push(rs.map((q) => q + offset));
    offset += r.routing[0] ? r.routing[0].rows / tokens : r.rows.reduce((a, rs) => a + rs.length, 0);
  }
  const routing: LayerRouting[] = Array.from({ length: layers }, (_, l) => {
    const parts = results.map((r) => r.routing[l]!);
    return {
      rows: parts.reduce((a, p) => a + p.rows, 0),
      topK: parts[0]!.topK,
      experts: concat(parts.map((p) => p.experts), Int16Array),
      weights: concat(parts.map((p) => p.weights), Float32Array),
    };
  });
  const anyReuse = results.some((r) => r.reuse);
  return {
    velocities: results.flatMap((r) => r.velocities),
    routing,
    rows,
    // dense and expert time summed over the lanes (work done); total: the wall time
    timings: { denseMs: results.reduce((a, r) => a + r.timings.denseMs, 0), expertMs: results.reduce((a, r) => a + r.timings.expertMs, 0), totalMs: wallMs },
    ...(anyReuse ? { reuse: results.flatMap((r) => r.reuse ?? r.velocities.map(() => undefined)) } : {}),
  };
}

/** A lane on a worker thread: from the TypeScript sources through tsx, else the bundled lane next to this module. */
export async function startLaneThread(options: LaneOptions): Promise<Lane> {
  const fromSource = import.meta.url.endsWith(".ts");
  const worker = fromSource
    ? new Worker(new URL("./lane-boot.mjs", import.meta.url), { workerData: { ...options, entry: new URL("./lane-thread.ts", import.meta.url).href } })
    : new Worker(new URL("./engine-lane-thread.mjs", import.meta.url), { workerData: options });
  const thread = await threadCalls(worker, "an engine lane", (error) => new SwitchyardError(`an engine lane cannot load the model from ${options.dir}: ${error}`, Code.DataLoss));
  return {
    forward: async (items) => (await thread.call<ThreadReply & { result: ForwardResult }>({ op: "forward", items })).result,
    get alive() {
      return thread.alive;
    },
    close: () => thread.close(),
  };
}

/** The engine on `lanes` lanes: the calling thread and lanes − 1 worker threads, each with its own sessions. */
export async function createLaneEngine(options: LaneEngineOptions): Promise<LaneEngine> {
  const lanes = options.lanes ?? DEFAULT_LANES;
  if (!Number.isInteger(lanes) || lanes < 1 || lanes > 64) throw new SwitchyardError(`lanes ${lanes} must be an integer from 1 to 64`, Code.InvalidArgument, { field: "lanes" });
  const threads = options.threadsPerLane ?? Math.max(1, Math.floor(availableParallelism() / lanes));
  if (!Number.isInteger(threads) || threads < 1) throw new SwitchyardError(`threadsPerLane ${threads} must be an integer >= 1`, Code.InvalidArgument, { field: "threadsPerLane" });
  const minRows = options.minRowsPerLane ?? DEFAULT_MIN_LANE_ROWS;
  if (!Number.isInteger(minRows) || minRows < 1) throw new SwitchyardError(`minRowsPerLane ${minRows} must be an integer >= 1`, Code.InvalidArgument, { field: "minRowsPerLane" });
  const ep = options.executionProvider ? { executionProvider: options.executionProvider } : {};
  const laneOptions: LaneOptions = { dir: options.dir, threads, ...(options.maxBatchRows ? { maxBatchRows: options.maxBatchRows } : {}), ...ep };
  // The calling thread's lane: its shared expert stays on it too (the other lanes take the other cores).
  const parts = await createOnnxModel({ dir: options.dir, denseThreads: threads, groupThreads: threads, sharedThread: false, ...ep });
  const here = createEngine({ parts, ...(options.maxBatchRows ? { maxBatchRows: options.maxBatchRows } : {}) });
  let others: Lane[];
  try {
    others = await Promise.all(Array.from({ length: lanes - 1 }, () => (options.startLane ?? startLaneThread)(laneOptions)));
  } catch (e) {
    await parts.close();
    throw e;
  }
  const T = parts.manifest.architecture.tokens;
  const live = () => others.filter((l) => l.alive);
  // One forward at a time on the calling thread's engine (its executor reuses buffers):
  // a dead lane's group waits for the group running here.
  let hereQueue: Promise<unknown> = Promise.resolve();
  const runHere = (group: readonly EvalItem[]): Promise<ForwardResult> => {
    const run = hereQueue.then(() => here.forward(group));
    hereQueue = run.catch(() => undefined);
    return run;
  };
  let warned = false;
  const runOn = async (lane: Lane, group: readonly EvalItem[]): Promise<ForwardResult> => {
    try {
      return await lane.forward(group);
    } catch (e) {
      if (!(e instanceof SwitchyardError && e.code === Code.Unavailable)) throw e;
      // Its thread died: this group runs here (bitwise the same), and the lane is dropped.
      if (!warned) process.emitWarning(`${e.message}; its share of the batch runs on the calling thread`, { code: "SWITCHYARD_ENGINE_LANE" });
      warned = true;
      return runHere(group);
    }
  };
  const engine: LaneEngine = {
    parts,
    get lanes() {
      return 1 + live().length;
    },
    async forward(items) {
      const t0 = performance.now();
      const threadLanes = live();
      const cuts = laneCuts(
        items.map((it) => (needsUnconditional(it.guidance) ? 2 : 1)),
        1 + threadLanes.length,
        minRows,
      );
      if (cuts.length === 2) return runHere(items);
      checkItems(items, parts.manifest); // errors name the batch's own item indices
      const groups = cuts.slice(1).map((end, g) => items.slice(cuts[g]!, end));
      // The thread lanes get theirs first; the calling thread's runs meanwhile.
      const away = groups.slice(1).map((g, i) => runOn(threadLanes[i]!, g));
      const settled = away.map((p) => p.then((value) => ({ value }), (error: unknown) => ({ error })));
      const mine = await runHere(groups[0]!);
      const results: ForwardResult[] = [mine];
      for (const s of await Promise.all(settled)) {
        if ("error" in s) throw s.error;
        results.push(s.value);
      }
      return joinLaneResults(results, T, performance.now() - t0);
    },
    step: (tasks) => stepWith(engine, tasks),
    async close() {
      await Promise.allSettled(others.map((l) => l.close()));
      others = [];
      await parts.close();
    },
  };
  return engine;
}
