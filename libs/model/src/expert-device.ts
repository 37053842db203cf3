import { Worker } from "node:worker_threads";
import { Code, SwitchyardError } from "@switchyard/errors";
import type { ExpertDevice } from "@switchyard/expert-cache";
import { type Manifest, indexParts, loadManifest } from "@switchyard/manifest";

/**
 * The expert device of @switchyard/expert-cache as a worker thread holding ONNX Runtime
 * sessions: on a CPU host "resident" means the session is created (weights parsed and
 * packed) and loading is creating it from the host store's bytes. Commands run in
 * issue order, like a CUDA stream. A CUDA build implements the same interface with
 * device buffers; the cache policy code above it does not change.
 */
export interface ThreadExpertDeviceOptions {
  readonly dir: string;
  readonly manifest?: Manifest;
  /** Intra-op threads of expert sessions (1: expert calls are small). */
  readonly threads?: number;
  /** ONNX Runtime graph optimization of expert sessions; see DEFAULT_DEVICE_GRAPH_OPTIMIZATION. */
  readonly graphOptimization?: "disabled" | "basic" | "extended" | "all";
}

/**
 * Loading is creating a session, so its cost is what a cache saves. An expert is two
 * matmuls: with optimizations off a session is created in ~0.75 ms instead of ~1.1 ms
 * ("all"), and the outputs are bitwise the same (checked by the cache tests against
 * the engine's sessions).
 */
export const DEFAULT_DEVICE_GRAPH_OPTIMIZATION = "disabled";

interface Reply {
  seq: number;
  error?: string;
  code?: string;
  [k: string]: unknown;
}

export function createThreadExpertDevice(options: ThreadExpertDeviceOptions): ExpertDevice {
  const manifest = options.manifest ?? loadManifest(options.dir);
  const index = indexParts(manifest);
  const E = manifest.moe.numExperts;
  const files: string[] = [];
  index.experts.forEach((row, l) => row.forEach((p, e) => (files[l * E + e] = p.file)));
  const worker = new Worker(new URL("./expert-device-thread.mjs", import.meta.url), {
    workerData: { dir: options.dir, files, threads: options.threads ?? 1, D: manifest.architecture.hiddenSize, graphOptimization: options.graphOptimization ?? DEFAULT_DEVICE_GRAPH_OPTIMIZATION },
  });
  worker.unref();
  let seq = 0;
  let closed = false;
  const pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: unknown) => void }>();
  const failAll = (e: unknown) => {
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
    stage: async (ids) => {
      const r = await call({ op: "host", ids: [...ids] });
      return { ms: r.ms as number, bytes: r.bytes as number };
    },
    load: async (ids) => ({ ms: (await call({ op: "load", ids: [...ids] })).ms as number }),
    evict: async (ids) => void (await call({ op: "evict", ids: [...ids] })),
    run: async (experts, offsets, x) => {
      // Transfer x's buffer when x owns all of it; copy a view.
      const owned = x.byteOffset === 0 && x.byteLength === x.buffer.byteLength && x.buffer instanceof ArrayBuffer;
      const r = await call({ op: "run", experts, offsets, x: owned ? x : x.slice() }, owned ? [x.buffer as ArrayBuffer] : []);
      return { y: r.y as Float32Array, loadMs: r.loadMs as number, computeMs: r.computeMs as number, loaded: r.loaded as number[] };
    },
    residentIds: async () => (await call({ op: "resident" })).ids as number[],
    close: async () => {
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
