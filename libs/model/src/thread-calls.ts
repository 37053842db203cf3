import type { Worker } from "node:worker_threads";
import { Code, SwitchyardError } from "@switchyard/errors";

/**
 * Calls to a worker thread that answers each command `{seq, ...}` with `{seq, ...}` (and
 * `{seq, error, code?}` when it fails), after a first message `{ready: true}` or
 * `{ready: false, error}`. Shared by the part thread (part-thread.ts) and the engine's
 * lanes (libs/engine/src/lanes.ts). Idle, the thread keeps no process alive (it is ref'd
 * while calls are pending). When it dies, pending and later calls fail with UNAVAILABLE;
 * once closed, with FAILED_PRECONDITION.
 */
export interface ThreadCalls {
  call<R extends ThreadReply>(cmd: Record<string, unknown>, transfer?: ArrayBuffer[]): Promise<R>;
  /** False once the thread has died or been closed. */
  readonly alive: boolean;
  /** Sends {op: "close"} (unless the thread is dead), then ends the thread. */
  close(): Promise<void>;
}

export interface ThreadReply {
  readonly seq?: number;
  readonly ready?: boolean;
  readonly error?: string;
  readonly code?: Code;
}

/** Waits for the thread's first message; `what` names it in errors ("the part thread"). */
export async function threadCalls(worker: Worker, what: string, notReady: (error: string) => SwitchyardError): Promise<ThreadCalls> {
  let seq = 0;
  let closed = false;
  let dead: SwitchyardError | undefined;
  const pending = new Map<number, { resolve: (r: ThreadReply) => void; reject: (e: unknown) => void }>();
  await new Promise<void>((resolve, reject) => {
    const early = (e: unknown) => reject(new SwitchyardError(`${what} did not start: ${e instanceof Error ? e.message : String(e)}`, Code.Unavailable, { cause: e }));
    worker.once("error", early);
    worker.once("message", (r: ThreadReply) => {
      worker.off("error", early);
      if (r.ready) return resolve();
      void worker.terminate();
      reject(notReady(String(r.error)));
    });
  });
  worker.unref();
  const fail = (e: SwitchyardError) => {
    dead ??= e;
    for (const p of pending.values()) p.reject(dead);
    pending.clear();
  };
  worker.on("message", (r: ThreadReply) => {
    const p = r.seq === undefined ? undefined : pending.get(r.seq);
    if (!p) return;
    pending.delete(r.seq!);
    if (pending.size === 0) worker.unref();
    if (r.error !== undefined) p.reject(new SwitchyardError(`${what}: ${r.error}`, r.code ?? Code.Internal));
    else p.resolve(r);
  });
  worker.on("error", (e) => fail(new SwitchyardError(`${what} failed: ${e.message}`, Code.Unavailable, { cause: e })));
  worker.on("exit", (c) => fail(new SwitchyardError(`${what} exited (code ${c})`, Code.Unavailable)));
  const call = <R extends ThreadReply>(cmd: Record<string, unknown>, transfer: ArrayBuffer[] = []) =>
    new Promise<R>((resolve, reject) => {
      if (closed) return reject(new SwitchyardError(`${what} is closed`, Code.FailedPrecondition));
      if (dead) return reject(dead);
      const s = ++seq;
      pending.set(s, { resolve: resolve as (r: ThreadReply) => void, reject });
      if (pending.size === 1) worker.ref();
      worker.postMessage({ ...cmd, seq: s }, transfer);
    });
  return {
    call,
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
