import { Worker } from "node:worker_threads";
import { Code, SwitchyardError } from "@switchyard/errors";

/**
 * Some of a model's parts on a thread of their own (a worker thread with its own ONNX
 * Runtime sessions). The Node binding runs a session on the thread that calls it, so two
 * calls on one thread run one after the other however many cores there are; a call on
 * this thread runs beside the caller's. The engine puts the shared expert here: it runs
 * while the routed experts run on the calling thread (#17: at batch 32 on 2 cores a step
 * took ~99 ms against ~115 with both on one thread, bitwise the same outputs).
 *
 * Inputs are copied to the thread (structured clone; a view is sliced first, since a
 * clone copies a view's whole buffer) and the output's buffer is transferred back, not
 * copied. Calls run in issue order. When the thread dies, pending and later calls fail
 * with UNAVAILABLE; the caller decides where to run instead.
 */
export interface PartThread {
  /** Runs part `part` (its index in `files`) on `inputs`, returning output `output` (float32). */
  run(part: number, inputs: Readonly<Record<string, { readonly data: Float32Array; readonly dims: readonly number[] }>>, output: string): Promise<Float32Array>;
  /** False once the thread has died or been closed. */
  readonly alive: boolean;
  close(): Promise<void>;
}

export interface PartThreadOptions {
  /** Model directory the files are in. */
  readonly dir: string;
  /** Part files (relative to dir), one session each. */
  readonly files: readonly string[];
  /** Intra-op threads of each session (default 1: the thread is itself the parallelism). */
  readonly threads?: number;
}

interface Reply {
  readonly seq?: number;
  readonly ready?: boolean;
  readonly error?: string;
  readonly y?: Float32Array;
}

/** Starts the thread and resolves once every session is created (DATA_LOSS when one cannot be). */
export async function createPartThread(options: PartThreadOptions): Promise<PartThread> {
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) throw new SwitchyardError(`threads ${threads} must be an integer >= 1`, Code.InvalidArgument, { field: "threads" });
  const worker = new Worker(new URL("./part-thread-entry.mjs", import.meta.url), { workerData: { dir: options.dir, files: [...options.files], threads } });
  let seq = 0;
  let closed = false;
  let dead: SwitchyardError | undefined;
  const pending = new Map<number, { resolve: (y: Float32Array) => void; reject: (e: unknown) => void }>();
  const fail = (e: SwitchyardError) => {
    dead ??= e;
    for (const p of pending.values()) p.reject(dead);
    pending.clear();
  };
  await new Promise<void>((resolve, reject) => {
    const early = (e: unknown) => reject(new SwitchyardError(`the part thread did not start: ${e instanceof Error ? e.message : String(e)}`, Code.Unavailable, { cause: e }));
    worker.once("error", early);
    worker.once("message", (r: Reply) => {
      worker.off("error", early);
      if (r.ready) resolve();
      else {
        void worker.terminate();
        reject(new SwitchyardError(`cannot load the parts ${options.files.join(", ")} on a thread: ${r.error}`, Code.DataLoss));
      }
    });
  });
  worker.unref(); // idle, it keeps no process alive; it is ref'd while calls are pending
  worker.on("message", (r: Reply) => {
    const p = r.seq === undefined ? undefined : pending.get(r.seq);
    if (!p) return;
    pending.delete(r.seq!);
    if (pending.size === 0) worker.unref();
    if (r.error !== undefined) p.reject(new SwitchyardError(`part thread: ${r.error}`, Code.Internal));
    else p.resolve(r.y ?? new Float32Array(0));
  });
  worker.on("error", (e) => fail(new SwitchyardError(`the part thread failed: ${e.message}`, Code.Unavailable, { cause: e })));
  worker.on("exit", (c) => fail(new SwitchyardError(`the part thread exited (code ${c})`, Code.Unavailable)));
  const call = (cmd: Record<string, unknown>) =>
    new Promise<Float32Array>((resolve, reject) => {
      if (closed) return reject(new SwitchyardError("the part thread is closed", Code.FailedPrecondition));
      if (dead) return reject(dead);
      const s = ++seq;
      pending.set(s, { resolve, reject });
      if (pending.size === 1) worker.ref();
      worker.postMessage({ ...cmd, seq: s });
    });
  const owned = (a: Float32Array) => (a.byteOffset === 0 && a.byteLength === a.buffer.byteLength ? a : a.slice());
  return {
    run(part, inputs, output) {
      const sent: Record<string, { data: Float32Array; dims: readonly number[] }> = {};
      for (const [name, t] of Object.entries(inputs)) sent[name] = { data: owned(t.data), dims: t.dims };
      return call({ op: "run", part, inputs: sent, output });
    },
    get alive() {
      return !dead && !closed;
    },
    async close() {
      if (closed) return;
      try {
        if (!dead) await call({ op: "close" });
      } finally {
        closed = true;
        await worker.terminate();
      }
    },
  };
}
