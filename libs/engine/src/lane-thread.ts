/**
 * An engine lane's thread (lanes.ts): the model's sessions and an engine of its own,
 * running the forwards it is sent one at a time. Protocol: {seq, op: "forward", items}
 * → {seq, result} or {seq, error, code}; {seq, op: "close"} → {seq}. First message: {ready}.
 */
import { parentPort, workerData } from "node:worker_threads";
import { type ExecutionProvider, createOnnxModel } from "@switchyard/model";
import { type EvalItem, type ForwardResult, createEngine } from "./engine";

interface LaneData {
  readonly dir: string;
  readonly threads: number;
  readonly maxBatchRows?: number;
  readonly executionProvider?: ExecutionProvider;
}

const port = parentPort!;
const { dir, threads, maxBatchRows, executionProvider } = workerData as LaneData;

/** Buffers a result owns whole (transferred back instead of copied), each once. */
function transferable(r: ForwardResult): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  const add = (a: Float32Array | Int16Array) => {
    if (a.buffer instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength) out.add(a.buffer);
  };
  r.velocities.forEach(add);
  for (const lr of r.routing) {
    add(lr.experts);
    add(lr.weights);
  }
  return [...out];
}

try {
  // One lane is one share of the cores: no thread of its own for the shared expert.
  const parts = await createOnnxModel({ dir, denseThreads: threads, groupThreads: threads, sharedThread: false, ...(executionProvider ? { executionProvider } : {}) });
  const engine = createEngine({ parts, ...(maxBatchRows ? { maxBatchRows } : {}) });
  let queue = Promise.resolve();
  port.on("message", (cmd: { seq: number; op: string; items?: EvalItem[] }) => {
    queue = queue.then(async () => {
      try {
        if (cmd.op === "close") {
          await parts.close();
          port.postMessage({ seq: cmd.seq });
          return;
        }
        const result = await engine.forward(cmd.items!);
        port.postMessage({ seq: cmd.seq, result }, transferable(result));
      } catch (e) {
        port.postMessage({ seq: cmd.seq, error: e instanceof Error ? e.message : String(e), code: (e as { code?: unknown }).code });
      }
    });
  });
  port.postMessage({ ready: true });
} catch (e) {
  port.postMessage({ ready: false, error: e instanceof Error ? e.message : String(e) });
}
