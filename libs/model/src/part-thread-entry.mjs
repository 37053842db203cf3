// A part thread: ONNX Runtime sessions of some of a model's parts on a thread of their
// own, so that their calls run beside the calling thread's instead of after them (the
// Node binding runs a session on the thread that calls it). Plain JavaScript so that it
// starts under node, tsx and vitest alike. Protocol: see part-thread.ts (this file has
// another name so that "./part-thread" resolves to that one).
import { join } from "node:path";
import { parentPort, workerData } from "node:worker_threads";
import * as ort from "onnxruntime-node";

// The sessions' options come from the caller (session-options.ts), as its own sessions'.
const { dir, files, sessionOptions } = workerData;

/** @type {import("onnxruntime-node").InferenceSession[]} */
let sessions = [];
try {
  sessions = await Promise.all(files.map((f) => ort.InferenceSession.create(join(dir, f), sessionOptions)));
  parentPort.postMessage({ ready: true });
} catch (e) {
  parentPort.postMessage({ ready: false, error: e instanceof Error ? e.message : String(e) });
}

// Commands run one at a time, in arrival order (a session runs synchronously here too).
let queue = Promise.resolve();
parentPort.on("message", (cmd) => {
  queue = queue.then(() => handle(cmd)).catch((e) => parentPort.postMessage({ seq: cmd.seq, error: e instanceof Error ? e.message : String(e) }));
});

async function handle(cmd) {
  switch (cmd.op) {
    case "run": {
      // inputs: { name: { data: Float32Array, dims: number[] } }; output: the one output to fetch.
      const s = sessions[cmd.part];
      if (!s) throw new Error(`part ${cmd.part} must be < ${sessions.length}`);
      const feeds = {};
      for (const [name, t] of Object.entries(cmd.inputs)) feeds[name] = new ort.Tensor("float32", t.data, t.dims);
      const out = (await s.run(feeds, [cmd.output]))[cmd.output];
      if (!out || out.type !== "float32") throw new Error(`output ${cmd.output} of ${files[cmd.part]} must be a float32 tensor`);
      const y = out.data;
      parentPort.postMessage({ seq: cmd.seq, y }, [y.buffer]);
      return;
    }
    case "close":
      await Promise.all(sessions.map((s) => s.release()));
      sessions = [];
      parentPort.postMessage({ seq: cmd.seq });
      return;
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}
