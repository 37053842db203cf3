import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { Code, SwitchyardError } from "@switchyard/errors";
import { type ExpertDevice, placeSelection, selectExperts } from "@switchyard/expert-cache";
import { type Manifest, indexParts, loadManifest } from "@switchyard/manifest";
import { splitExpertWeights } from "./expert-weights";
import { type ExecutionProvider, executionProvidersFor } from "./session-options";

/**
 * The expert device of @switchyard/expert-cache as a worker thread running ONNX Runtime:
 * "resident" means the expert's weights are in the device's memory, and loading is
 * copying them there from the host store, as on a GPU: one session per graph skeleton
 * runs every expert with those weights fed as inputs (expert-weights.ts; checked bitwise
 * against the part's own session on first use). A part that does not split loads by
 * creating a session from its bytes. Commands run in issue order, like a CUDA stream. A
 * CUDA build implements the same interface with device buffers; the cache policy code
 * above it does not change.
 */
export interface ThreadExpertDeviceOptions {
  readonly dir: string;
  readonly manifest?: Manifest;
  /** Intra-op threads of expert sessions (1: expert calls are small). */
  readonly threads?: number;
  /** Device threads; expert g lives on thread g mod streams (default DEFAULT_DEVICE_STREAMS). */
  readonly streams?: number;
  /** ONNX Runtime graph optimization of expert sessions; see DEFAULT_DEVICE_GRAPH_OPTIMIZATION. */
  readonly graphOptimization?: "disabled" | "basic" | "extended" | "all";
  /** Where expert sessions run (default "cpu"), as the model's other parts. */
  readonly executionProvider?: ExecutionProvider;
}

/**
 * Sessions on the device (a skeleton's, or a part's that does not split) are created
 * with optimizations off: an expert is two matmuls, a session is created in ~0.5 ms
 * instead of ~1.1 ms ("all"), and the outputs are bitwise the same (checked by the
 * cache tests against the engine's sessions).
 */
export const DEFAULT_DEVICE_GRAPH_OPTIMIZATION = "disabled";

/**
 * One device thread. On this repository's 2-core machine two streams measured no gain
 * (budgeted step at batch 32 ÷ no budget: 1.46 with one, 1.49 with two): the cores are
 * already busy with the dense parts. Hosts with more cores can raise it.
 */
export const DEFAULT_DEVICE_STREAMS = 1;

interface Reply {
  seq: number;
  error?: string;
  code?: string;
  [k: string]: unknown;
}

/** One device thread: a command queue with replies matched by sequence number. */
function startStream(options: ThreadExpertDeviceOptions, manifest: Manifest, files: string[]) {
  const worker = new Worker(new URL("./expert-device-thread.mjs", import.meta.url), {
    workerData: { dir: options.dir, files, threads: options.threads ?? 1, D: manifest.architecture.hiddenSize, graphOptimization: options.graphOptimization ?? DEFAULT_DEVICE_GRAPH_OPTIMIZATION, executionProviders: executionProvidersFor(options.executionProvider ?? "cpu") },
  });
  worker.unref();
  let seq = 0;
  let closed = false;
  /** Set when the thread died: every later call fails with it instead of waiting forever. */
  let dead: SwitchyardError | undefined;
  const pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: unknown) => void }>();
  const failAll = (e: SwitchyardError) => {
    dead ??= e;
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  };
  worker.on("message", (r: Reply) => {
    const p = pending.get(r.seq);
    if (!p) return;
    pending.delete(r.seq);
    if (r.error !== undefined) p.reject(new SwitchyardError(`expert device: ${r.error}`, r.code === "NOT_FOUND" ? Code.NotFound : Code.Internal));
    else p.resolve(r);
  });
  worker.on("error", (e) => failAll(new SwitchyardError("expert device thread failed", Code.Internal, { cause: e })));
  worker.on("exit", (c) => failAll(new SwitchyardError(`expert device thread exited (${c})`, Code.Unavailable)));
  const call = (cmd: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<Reply> => {
    if (closed) return Promise.reject(new SwitchyardError("expert device is closed", Code.FailedPrecondition));
    if (dead) return Promise.reject(dead);
    const s = ++seq;
    return new Promise<Reply>((resolve, reject) => {
      pending.set(s, { resolve, reject });
      if (pending.size === 1) worker.ref();
      worker.postMessage({ ...cmd, seq: s }, transfer);
    }).finally(() => {
      if (pending.size === 0) worker.unref();
    });
  };
  return {
    call,
    async close() {
      if (closed) return;
      try {
        await call({ op: "close" });
      } finally {
        closed = true;
        await worker.terminate();
      }
    },
  };
}

/**
 * Streams (threads) of the device: expert g lives on stream g mod N, so a layer's
 * experts run (and load) on N threads at once; each stream keeps issue order for its
 * own experts, which is all the ordering the residency relies on.
 */
export function createThreadExpertDevice(options: ThreadExpertDeviceOptions): ExpertDevice {
  const manifest = options.manifest ?? loadManifest(options.dir);
  const index = indexParts(manifest);
  const E = manifest.moe.numExperts;
  const D = manifest.architecture.hiddenSize;
  const files: string[] = [];
  index.experts.forEach((row, l) => row.forEach((p, e) => (files[l * E + e] = p.file)));
  const n = options.streams ?? DEFAULT_DEVICE_STREAMS;
  if (!Number.isInteger(n) || n < 1) throw new SwitchyardError(`streams ${n} must be an integer >= 1`, Code.InvalidArgument, { field: "streams" });
  const streams = Array.from({ length: n }, () => startStream(options, manifest, files));
  const split = (ids: readonly number[]) => streams.map((_, k) => ids.filter((id) => id % n === k));
  /** Skeletons each stream has been sent. */
  const sent = streams.map(() => new Set<string>());
  /** A stream's host-store entries: each part's bytes and, where it splits, its weights. */
  const entries = (ids: readonly number[], k: number) => {
    const skeletons: Record<string, Uint8Array> = {};
    const list = ids.map((id) => {
      const file = files[id];
      if (!file) throw new SwitchyardError(`expert ${id} is not in the manifest`, Code.NotFound);
      const bytes = readFileSync(join(options.dir, file));
      try {
        const w = splitExpertWeights(bytes, file);
        if (!sent[k]!.has(w.key)) {
          sent[k]!.add(w.key);
          skeletons[w.key] = w.skeleton;
        }
        return { id, bytes, key: w.key, tensors: w.tensors };
      } catch (e) {
        if (e instanceof SwitchyardError && e.code === Code.FailedPrecondition) return { id, bytes }; // loads as a session
        throw e;
      }
    });
    return { entries: list, skeletons };
  };
  return {
    stage: async (ids) => {
      const t0 = performance.now();
      const rs = await Promise.all(split(ids).map((part, k) => (part.length ? streams[k]!.call({ op: "host", ...entries(part, k) }) : undefined)));
      return { ms: performance.now() - t0, bytes: rs.reduce((a, r) => a + ((r?.bytes as number) ?? 0), 0) };
    },
    load: async (ids) => {
      const rs = await Promise.all(split(ids).map((part, k) => (part.length ? streams[k]!.call({ op: "load", ids: part }) : undefined)));
      return { ms: rs.reduce((a, r) => a + ((r?.ms as number) ?? 0), 0) };
    },
    evict: async (ids) => void (await Promise.all(split(ids).map((part, k) => (part.length ? streams[k]!.call({ op: "evict", ids: part }) : undefined)))),
    run: async (experts, offsets, x) => {
      if (n === 1) {
        // Transfer x's buffer when x owns all of it; copy a view.
        const owned = x.byteOffset === 0 && x.byteLength === x.buffer.byteLength && x.buffer instanceof ArrayBuffer;
        const r = await streams[0]!.call({ op: "run", experts, offsets, x: owned ? x : x.slice() }, owned ? [x.buffer as ArrayBuffer] : []);
        return { y: r.y as Float32Array, loadMs: r.loadMs as number, computeMs: r.computeMs as number, loaded: r.loaded as number[] };
      }
      // Each stream gets its experts' rows, contiguous; outputs go back to x's order.
      const parts = streams.map((): number[] => []);
      for (let i = 0; i < experts.length; i++) parts[experts[i]! % n]!.push(i);
      const y = new Float32Array(x.length);
      const rs = await Promise.all(
        parts.map(async (idx, k) => {
          if (!idx.length) return undefined;
          const sel = selectExperts(experts, offsets, x, D, idx);
          const r = await streams[k]!.call({ op: "run", experts: sel.experts, offsets: sel.offsets, x: sel.x }, [sel.x.buffer as ArrayBuffer]);
          placeSelection(y, offsets, D, sel, r.y as Float32Array);
          return r;
        }),
      );
      const done = rs.filter((r): r is Reply => r !== undefined);
      return {
        y,
        // streams run side by side: the longest one is what the caller waited for
        loadMs: Math.max(0, ...done.map((r) => r.loadMs as number)),
        computeMs: Math.max(0, ...done.map((r) => r.computeMs as number)),
        loaded: done.flatMap((r) => r.loaded as number[]),
      };
    },
    residentIds: async () => (await Promise.all(streams.map((st) => st.call({ op: "resident" })))).flatMap((r) => r.ids as number[]),
    close: async () => void (await Promise.all(streams.map((st) => st.close()))),
  };
}
