import { readFileSync } from "node:fs";
import { join } from "node:path";
import { availableParallelism } from "node:os";
import * as ort from "onnxruntime-node";
import { Code, SwitchyardError } from "@switchyard/errors";
import { type Manifest, type PartIndex, type PartSpec, indexParts, loadManifest } from "@switchyard/manifest";
import { groupExpertModels, groupedName } from "./expert-group";
import { type PartThread, type PartThreadOptions, createPartThread } from "./part-thread";
import { type ExecutionProvider, providerUnavailable, sessionOptions } from "./session-options";

/** Outputs of `block{l}.dense` for a batch of B images (flat, row-major). */
export interface DenseOutputs {
  /** [B,T,D] residual stream after attention */
  readonly h1: Float32Array;
  /** [B,T,D] MoE input */
  readonly u: Float32Array;
  /** [B,T,E] router logits */
  readonly logits: Float32Array;
  /** [B,D] adaLN gate applied to the MoE output */
  readonly gate: Float32Array;
}

/**
 * The executable parts of a model. The in-process engine and the distributed worker
 * both drive this interface; tests put an in-memory version behind it.
 */
export interface ModelParts {
  readonly manifest: Manifest;
  embed(x: Float32Array, t: Float32Array, y: BigInt64Array): Promise<{ h: Float32Array; c: Float32Array }>;
  /** Fresh outputs the caller owns (the engine adds the MoE output into h1 in place). */
  dense(layer: number, h: Float32Array, c: Float32Array, batch: number): Promise<DenseOutputs>;
  /** Runs expert `expert` of `layer` over `rows` rows of u ([rows, D]); FAILED_PRECONDITION when not loaded. */
  expert(layer: number, expert: number, u: Float32Array, rows: number): Promise<Float32Array>;
  /**
   * Runs several experts of one layer in one call: expert experts[i] over rows
   * offsets[i]..offsets[i+1]-1 of x ([n, D]); one output per expert, bitwise what
   * expert() gives for each. Optional: callers fall back to expert() per expert.
   */
  runExperts?(layer: number, experts: Int32Array, offsets: Int32Array, x: Float32Array): Promise<Float32Array[]>;
  shared(layer: number, u: Float32Array, rows: number): Promise<Float32Array>;
  /**
   * Whether shared() over `rows` rows runs on a thread of its own (see
   * OnnxModelOptions.sharedThread): it then does not hold up this thread, and a caller
   * that serializes the model's calls (the worker's compute gate) need not queue it.
   */
  sharedOffThread?(rows: number): boolean;
  final(h: Float32Array, c: Float32Array, batch: number): Promise<Float32Array>;
  hasExpert(layer: number, expert: number): boolean;
  /** Makes an expert ready to run (session created, weights loaded). Idempotent. */
  loadExpert(layer: number, expert: number): Promise<void>;
  /** Releases an expert's session. Idempotent. */
  unloadExpert(layer: number, expert: number): Promise<void>;
  close(): Promise<void>;
}

export interface OnnxModelOptions {
  /** Model directory holding manifest.json and the parts. */
  readonly dir: string;
  /** Which experts to load at start; default all. Others can be loaded later. */
  readonly experts?: (layer: number, expert: number) => boolean;
  /** Intra-op threads for embed/dense/final sessions. */
  readonly denseThreads?: number;
  /** Intra-op threads for per-expert sessions (tiny matmuls: 1 avoids pool overhead). */
  readonly expertThreads?: number;
  /**
   * Intra-op threads for a layer's grouped expert session (default `denseThreads`, or one
   * fewer with the shared expert on a thread of its own, which then takes a core): one
   * call over every routed row of the layer is a dense-sized workload. In-process at
   * batch 32 on 2 cores, with the shared expert on this thread, 2 threads against 1 (20
   * alternating rounds, three runs): 88.0 vs 92.5, 85.7 vs 87.8, 85.9 vs 88.1 ms per
   * forward; with it on its own thread, 1 against 2: 0.872 vs 0.904 and 0.877 vs 0.910 of
   * the step with both on this thread. Outputs bitwise the same.
   */
  readonly groupThreads?: number;
  /**
   * Runs each layer's loaded experts as one grouped session (one call per layer instead of
   * one per expert; see expert-group.ts). Default on. It holds a second copy of the
   * loaded experts' weights; it is rebuilt, on the next call, after an expert is loaded or
   * released, and used only once it has given bitwise the parts' outputs on a probe.
   */
  readonly groupExperts?: boolean;
  /**
   * Runs the shared expert on a thread of its own (part-thread.ts), beside the routed
   * experts, which run on the calling thread. Default: on where there is more than one
   * core (DEFAULT_SHARED_THREAD). Outputs are bitwise the same either way.
   */
  readonly sharedThread?: boolean;
  /** Intra-op threads of the shared expert's sessions on that thread (default 1). */
  readonly sharedThreads?: number;
  /** Where ONNX Runtime runs every session (default "cpu"); see EXECUTION_PROVIDERS. */
  readonly executionProvider?: ExecutionProvider;
  /** Starts that thread (default createPartThread; tests put one that fails behind it). */
  readonly startPartThread?: (options: PartThreadOptions) => Promise<PartThread>;
}

/**
 * Below this many rows the shared expert runs on the calling thread even with a thread of
 * its own: a call there costs ~0.35 ms more (messages and wake-ups). Same comparison per
 * batch (rows = 2 × 49 × batch): batch 1 (98 rows) 19.0 vs 15.9 ms per step; batch 4
 * (392) 24.2 vs 27.7; batch 8 (784) 38.8 vs 44.2; batch 16 66.0 vs 78.2.
 */
export const SHARED_THREAD_MIN_ROWS = 256;

/** How a model's parts use the cores they are given (threadDefaults). */
export interface ThreadDefaults {
  /** Intra-op threads of embed, dense and final sessions. */
  readonly denseThreads: number;
  /** Whether the shared expert runs on a thread of its own. */
  readonly sharedThread: boolean;
}

/**
 * The threads a model's parts use on `cores` cores (a worker's SWITCHYARD_WORKER_CORES,
 * by default all of this machine's):
 * - dense parts are matmuls over B*T rows: they use the cores, up to 4, with an expert
 *   device too (a thread of its own that runs and loads experts, idle most of a step).
 *   Leaving it a core cost more than sharing one: on 2 cores at batch 32 (bench:cache's
 *   live bench, alternating processes) a step with every expert on the device took
 *   113.7/114.2 ms with 1 dense thread against 99.2/95.0 with 2, and at a 50 % predictive
 *   budget 124.5/123.7 against 98.8/80.4; at batch 1, 12.5/14.0 against 12.3/14.2 and
 *   16.9/13.8 against 14.7/14.5;
 * - the shared expert runs on a thread of its own from 2 cores: in-process at batch 32 on
 *   2 cores (one step, 20 steps × 3 alternating runs) 101.8/96.2/106.5 ms against
 *   116.9/116.5/111.8 with it on the calling thread.
 * On one core every extra thread only waits for the core: 2 worker processes on 2
 * cores, each given 1, stepped batch 32 in 80.9/74.8/88.1 ms against 108.5/101.7/100.6
 * each with this machine's defaults (alternating runs; their main threads waited
 * 4-10 ms per step for a core against 24-34).
 */
export function threadDefaults(cores: number): ThreadDefaults {
  const c = Math.max(1, Math.floor(cores));
  return { denseThreads: Math.min(4, c), sharedThread: c > 1 };
}

const MACHINE_THREADS = threadDefaults(availableParallelism());
/** threadDefaults of this machine's cores. */
export const DEFAULT_SHARED_THREAD = MACHINE_THREADS.sharedThread;
export const DEFAULT_DENSE_THREADS = MACHINE_THREADS.denseThreads;
/** Expert calls are small (tens of rows); a thread pool costs more than it gives. */
export const DEFAULT_EXPERT_THREADS = 1;

async function createSession(dir: string, part: Pick<PartSpec, "name" | "file">, threads: number, provider: ExecutionProvider = "cpu"): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(join(dir, part.file), sessionOptions(threads, provider));
  } catch (e) {
    throw providerUnavailable(provider, e) ?? new SwitchyardError(`cannot load part ${part.name} from ${part.file}`, Code.DataLoss, { cause: e });
  }
}

function f32(t: ort.Tensor | undefined, what: string): Float32Array {
  if (!t || t.type !== "float32") throw new SwitchyardError(`${what}: expected a float32 output`, Code.Internal);
  return t.data as Float32Array;
}

/** A layer's loaded experts as one session (expert-group.ts). */
interface LayerGroup {
  readonly session: ort.InferenceSession;
  /** Member experts (ids within the layer), ascending. */
  readonly members: readonly number[];
  readonly isMember: Uint8Array;
  /** Runs in flight: a retired group is released when the last one ends. */
  active: number;
  retired: boolean;
}

/** Rows per member in the probe a grouped session must pass before use. */
const GROUP_PROBE_ROWS = 3;

class OnnxModel implements ModelParts {
  private readonly experts: (ort.InferenceSession | undefined)[][];
  private readonly loading = new Map<string, Promise<void>>();
  private closed = false;
  private sharedThreadLost = false;
  /** Per layer: the grouped session being built or in use; undefined = build on next call. */
  private readonly groups: (Promise<LayerGroup | undefined> | undefined)[];
  private readonly noRows: ort.Tensor;

  constructor(
    readonly manifest: Manifest,
    private readonly dir: string,
    private readonly index: PartIndex,
    private readonly sEmbed: ort.InferenceSession,
    private readonly sDense: ort.InferenceSession[],
    private readonly sShared: (ort.InferenceSession | undefined)[],
    private readonly sFinal: ort.InferenceSession,
    private readonly expertThreads: number,
    private readonly groupExperts: boolean,
    private readonly groupThreads: number,
    private readonly provider: ExecutionProvider,
    /** The shared expert's thread and each layer's part index on it (-1: none); undefined: on this thread. */
    private readonly sharedThread?: { readonly thread: PartThread; readonly part: readonly number[] },
  ) {
    this.experts = index.experts.map((row) => row.map(() => undefined));
    this.groups = index.experts.map(() => undefined);
    this.noRows = new ort.Tensor("float32", new Float32Array(0), [0, manifest.architecture.hiddenSize]);
  }

  private get T(): number {
    return this.manifest.architecture.tokens;
  }
  private get D(): number {
    return this.manifest.architecture.hiddenSize;
  }

  async embed(x: Float32Array, t: Float32Array, y: BigInt64Array): Promise<{ h: Float32Array; c: Float32Array }> {
    const { channels, height, width } = this.manifest.image;
    const B = t.length;
    const out = await this.sEmbed.run({
      x: new ort.Tensor("float32", x, [B, channels, height, width]),
      t: new ort.Tensor("float32", t, [B]),
      y: new ort.Tensor("int64", y, [B]),
    });
    return { h: f32(out.h, "embed.h"), c: f32(out.c, "embed.c") };
  }

  async dense(layer: number, h: Float32Array, c: Float32Array, batch: number): Promise<DenseOutputs> {
    const s = this.sDense[layer];
    if (!s) throw new SwitchyardError(`layer ${layer} must be < ${this.sDense.length}`, Code.OutOfRange);
    const out = await s.run({
      h: new ort.Tensor("float32", h, [batch, this.T, this.D]),
      c: new ort.Tensor("float32", c, [batch, this.D]),
    });
    return {
      h1: f32(out.h1, "dense.h1"),
      u: f32(out.u, "dense.u"),
      logits: f32(out.logits, "dense.logits"),
      gate: f32(out.gate, "dense.gate"),
    };
  }

  async expert(layer: number, expert: number, u: Float32Array, rows: number): Promise<Float32Array> {
    const s = this.experts[layer]?.[expert];
    if (!s) throw new SwitchyardError(`expert ${expert} of layer ${layer} is not loaded on this worker`, Code.FailedPrecondition);
    const out = await s.run({ u: new ort.Tensor("float32", u, [rows, this.D]) });
    return f32(out.y, "expert.y");
  }

  async runExperts(layer: number, experts: Int32Array, offsets: Int32Array, x: Float32Array): Promise<Float32Array[]> {
    const D = this.D;
    const g = this.groupExperts && experts.length > 1 ? await this.group(layer) : undefined;
    if (!g || !experts.every((e) => g.isMember[e] === 1)) {
      const out: Float32Array[] = [];
      for (let i = 0; i < experts.length; i++) {
        const n = offsets[i + 1]! - offsets[i]!;
        out.push(n === 0 ? new Float32Array(0) : await this.expert(layer, experts[i]!, x.subarray(offsets[i]! * D, offsets[i + 1]! * D), n));
      }
      return out;
    }
    // Every member is fed (the others with no rows); only the experts with rows are
    // fetched, and ONNX Runtime runs only the nodes the fetched outputs need.
    const feeds: Record<string, ort.Tensor> = {};
    for (const e of g.members) feeds[groupedName(e, "u")] = this.noRows;
    const fetches: string[] = [];
    for (let i = 0; i < experts.length; i++) {
      const n = offsets[i + 1]! - offsets[i]!;
      if (n === 0) continue;
      feeds[groupedName(experts[i]!, "u")] = new ort.Tensor("float32", x.subarray(offsets[i]! * D, offsets[i + 1]! * D), [n, D]);
      fetches.push(groupedName(experts[i]!, "y"));
    }
    if (fetches.length === 0) return Array.from(experts, () => new Float32Array(0));
    g.active++;
    let out: ort.InferenceSession.OnnxValueMapType;
    try {
      out = await g.session.run(feeds, fetches);
    } finally {
      if (--g.active === 0 && g.retired) void g.session.release().catch(() => undefined);
    }
    return Array.from(experts, (e, i) => (offsets[i + 1] === offsets[i] ? new Float32Array(0) : f32(out[groupedName(e, "y")], "experts.y")));
  }

  /** The layer's grouped session over its loaded experts (built on first use after a change). */
  private group(layer: number): Promise<LayerGroup | undefined> {
    let g = this.groups[layer];
    if (!g) {
      g = this.buildGroup(layer);
      this.groups[layer] = g;
    }
    return g;
  }

  private async buildGroup(layer: number): Promise<LayerGroup | undefined> {
    const members: number[] = [];
    this.experts[layer]!.forEach((s, e) => s && members.push(e));
    if (members.length < 2) return undefined;
    const specs = members.map((e) => this.index.experts[layer]![e]!);
    let session: ort.InferenceSession;
    try {
      const bytes = groupExpertModels(
        specs.map((p, i) => ({ key: members[i]!, name: p.name, bytes: readFileSync(join(this.dir, p.file)) })),
        `block${layer}.experts`,
      );
      session = await ort.InferenceSession.create(bytes, sessionOptions(this.groupThreads, this.provider));
    } catch (e) {
      // Not fatal: the layer runs its experts one by one, as without grouping.
      process.emitWarning(`cannot build the grouped experts of layer ${layer} (${(e as Error).message}); running them one by one`, { code: "SWITCHYARD_GROUPED_EXPERTS" });
      return undefined;
    }
    // The group must compute bitwise what each part computes before it is used.
    const D = this.D;
    const feeds: Record<string, ort.Tensor> = {};
    const probe = Float32Array.from({ length: GROUP_PROBE_ROWS * D }, (_, i) => Math.sin(0.37 * i + 0.11));
    for (const e of members) feeds[groupedName(e, "u")] = new ort.Tensor("float32", probe, [GROUP_PROBE_ROWS, D]);
    let differs: string | undefined;
    try {
      const got = await session.run(feeds);
      for (const e of members) {
        const s = this.experts[layer]![e];
        if (!s) continue; // released meanwhile: that release retires this group
        const want = f32((await s.run({ u: new ort.Tensor("float32", probe, [GROUP_PROBE_ROWS, D]) })).y, "expert.y");
        const have = f32(got[groupedName(e, "y")], "experts.y");
        if (have.length !== want.length || !have.every((v, i) => Object.is(v, want[i]))) {
          differs = specs[members.indexOf(e)]!.name;
          break;
        }
      }
    } catch (e) {
      differs = `(the probe failed: ${(e as Error).message})`;
    }
    if (differs !== undefined) {
      await session.release();
      process.emitWarning(`grouped experts of layer ${layer} differ from part ${differs} on the probe; running them one by one`, { code: "SWITCHYARD_GROUPED_EXPERTS" });
      return undefined;
    }
    const isMember = new Uint8Array(this.index.experts[layer]!.length);
    for (const e of members) isMember[e] = 1;
    return { session, members, isMember, active: 0, retired: false };
  }

  /** After a load or release: the next call builds the layer's group anew. */
  private invalidateGroup(layer: number): void {
    const g = this.groups[layer];
    this.groups[layer] = undefined;
    void g?.then(
      (x) => {
        if (!x) return;
        x.retired = true;
        if (x.active === 0) void x.session.release().catch(() => undefined);
      },
      () => undefined,
    );
  }

  sharedOffThread(rows: number): boolean {
    return rows >= SHARED_THREAD_MIN_ROWS && (this.sharedThread?.thread.alive ?? false);
  }

  async shared(layer: number, u: Float32Array, rows: number): Promise<Float32Array> {
    const s = this.sShared[layer];
    if (!s) throw new SwitchyardError(`layer ${layer} has no shared expert`, Code.FailedPrecondition);
    const st = this.sharedThread;
    if (st && this.sharedOffThread(rows)) {
      try {
        return await st.thread.run(st.part[layer]!, { u: { data: u.subarray(0, rows * this.D), dims: [rows, this.D] } }, "y");
      } catch (e) {
        // The thread died: this call and the later ones run here (the same outputs, bitwise).
        if (!(e instanceof SwitchyardError && e.code === Code.Unavailable)) throw e;
        if (!this.sharedThreadLost) process.emitWarning(`${e.message}; the shared expert runs on the calling thread from now on`, { code: "SWITCHYARD_SHARED_THREAD" });
        this.sharedThreadLost = true;
      }
    }
    const out = await s.run({ u: new ort.Tensor("float32", u, [rows, this.D]) });
    return f32(out.y, "shared.y");
  }

  async final(h: Float32Array, c: Float32Array, batch: number): Promise<Float32Array> {
    const out = await this.sFinal.run({
      h: new ort.Tensor("float32", h, [batch, this.T, this.D]),
      c: new ort.Tensor("float32", c, [batch, this.D]),
    });
    return f32(out.v, "final.v");
  }

  hasExpert(layer: number, expert: number): boolean {
    return this.experts[layer]?.[expert] !== undefined;
  }

  loadExpert(layer: number, expert: number): Promise<void> {
    if (this.closed) return Promise.reject(new SwitchyardError("model is closed", Code.FailedPrecondition));
    const spec = this.index.experts[layer]?.[expert];
    if (!spec) {
      return Promise.reject(new SwitchyardError(`expert ${layer}/${expert} is not in the manifest`, Code.NotFound));
    }
    if (this.hasExpert(layer, expert)) return Promise.resolve();
    const key = `${layer}/${expert}`;
    let p = this.loading.get(key);
    if (!p) {
      p = createSession(this.dir, spec, this.expertThreads, this.provider)
        .then((s) => {
          (this.experts[layer] as (ort.InferenceSession | undefined)[])[expert] = s;
          this.invalidateGroup(layer);
        })
        .finally(() => this.loading.delete(key));
      this.loading.set(key, p);
    }
    return p;
  }

  async unloadExpert(layer: number, expert: number): Promise<void> {
    const row = this.experts[layer];
    const s = row?.[expert];
    if (!row || !s) return;
    row[expert] = undefined;
    this.invalidateGroup(layer);
    await s.release();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled(this.loading.values());
    const groups = await Promise.all(this.groups.map((g) => g?.catch(() => undefined)));
    this.groups.fill(undefined);
    await Promise.all(groups.map((g) => g?.session.release()));
    await this.sharedThread?.thread.close();
    const all = [this.sEmbed, this.sFinal, ...this.sDense, ...this.sShared, ...this.experts.flat()];
    await Promise.all(all.filter((s): s is ort.InferenceSession => s !== undefined).map((s) => s.release()));
  }
}

/** Loads a model directory into ONNX Runtime sessions, one per part. */
export async function createOnnxModel(options: OnnxModelOptions): Promise<ModelParts> {
  const manifest = loadManifest(options.dir);
  const index = indexParts(manifest);
  const dt = options.denseThreads ?? DEFAULT_DENSE_THREADS;
  const et = options.expertThreads ?? DEFAULT_EXPERT_THREADS;
  const ep = options.executionProvider ?? "cpu";
  // The first session alone: a missing provider fails once, before the others are tried.
  const sEmbed = await createSession(options.dir, index.embed, dt, ep);
  const [sFinal, sDense] = await Promise.all([createSession(options.dir, index.final, dt, ep), Promise.all(index.dense.map((p) => createSession(options.dir, p, dt, ep)))]);
  // The shared expert runs over every row of the batch: a dense-sized matmul.
  const sShared = await Promise.all(index.shared.map((p) => (p ? createSession(options.dir, p, dt, ep) : undefined)));
  const shared = await startSharedThread(options, index);
  const model = new OnnxModel(manifest, options.dir, index, sEmbed, sDense, sShared, sFinal, et, options.groupExperts ?? true, options.groupThreads ?? (shared ? Math.max(1, dt - 1) : dt), ep, shared);
  const want = options.experts ?? (() => true);
  const loads: Promise<void>[] = [];
  index.experts.forEach((row, l) => row.forEach((_, e) => want(l, e) && loads.push(model.loadExpert(l, e))));
  await Promise.all(loads);
  return model;
}

/** The shared expert's thread (its sessions created), or undefined when off, without a shared expert, or when it cannot start. */
async function startSharedThread(options: OnnxModelOptions, index: PartIndex): Promise<{ thread: PartThread; part: number[] } | undefined> {
  if (!(options.sharedThread ?? DEFAULT_SHARED_THREAD)) return undefined;
  const files: string[] = [];
  const part = index.shared.map((p) => (p ? files.push(p.file) - 1 : -1));
  if (files.length === 0) return undefined;
  try {
    return { thread: await (options.startPartThread ?? createPartThread)({ dir: options.dir, files, threads: options.sharedThreads ?? 1, ...(options.executionProvider ? { executionProvider: options.executionProvider } : {}) }), part };
  } catch (e) {
    if (e instanceof SwitchyardError && e.code === Code.InvalidArgument) throw e;
    process.emitWarning(`${(e as Error).message}; the shared expert runs on the calling thread`, { code: "SWITCHYARD_SHARED_THREAD" });
    return undefined;
  }
}

/** The quality classifier exported with the model: logits [B,10] and features [B,F]. */
export interface Classifier {
  classify(x: Float32Array, batch: number): Promise<{ logits: Float32Array; features: Float32Array }>;
  close(): Promise<void>;
}

export async function createClassifier(dir: string, manifest: Manifest): Promise<Classifier> {
  if (!manifest.classifier) throw new SwitchyardError(`model ${manifest.name} ships no classifier`, Code.FailedPrecondition);
  const s = await createSession(dir, { name: "classifier", file: manifest.classifier.file }, DEFAULT_DENSE_THREADS);
  const { channels, height, width } = manifest.image;
  return {
    async classify(x, batch) {
      const out = await s.run({ x: new ort.Tensor("float32", x, [batch, channels, height, width]) });
      return { logits: f32(out.logits, "classifier.logits"), features: f32(out.features, "classifier.features") };
    },
    close: () => s.release(),
  };
}
