import { Worker } from "node:worker_threads";
import { Code, SwitchyardError } from "@switchyard/errors";
import { type ExecutionProvider, providerUnavailable, sessionOptions } from "./session-options";
import { type ThreadReply, threadCalls } from "./thread-calls";

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
  /** Where its sessions run (default "cpu"). */
  readonly executionProvider?: ExecutionProvider;
}

/** Starts the thread and resolves once every session is created (DATA_LOSS when one cannot be). */
export async function createPartThread(options: PartThreadOptions): Promise<PartThread> {
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) throw new SwitchyardError(`threads ${threads} must be an integer >= 1`, Code.InvalidArgument, { field: "threads" });
  const provider = options.executionProvider ?? "cpu";
  const worker = new Worker(new URL("./part-thread-entry.mjs", import.meta.url), { workerData: { dir: options.dir, files: [...options.files], sessionOptions: sessionOptions(threads, provider) } });
  const thread = await threadCalls(worker, "the part thread", (error) => providerUnavailable(provider, error) ?? new SwitchyardError(`cannot load the parts ${options.files.join(", ")} on a thread: ${error}`, Code.DataLoss));
  const owned = (a: Float32Array) => (a.byteOffset === 0 && a.byteLength === a.buffer.byteLength ? a : a.slice());
  return {
    async run(part, inputs, output) {
      const sent: Record<string, { data: Float32Array; dims: readonly number[] }> = {};
      for (const [name, t] of Object.entries(inputs)) sent[name] = { data: owned(t.data), dims: t.dims };
      return (await thread.call<ThreadReply & { y: Float32Array }>({ op: "run", part, inputs: sent, output })).y;
    },
    get alive() {
      return thread.alive;
    },
    close: () => thread.close(),
  };
}
