// The expert device: a thread that holds the resident experts (ONNX sessions) and runs
// them, in the order commands arrive, like a GPU stream. Plain JavaScript so that it
// starts under node, tsx and vitest alike. Protocol: see expert-device.ts.
//
// Two memory tiers: the host store (every expert's serialized bytes this worker may
// need, read from the model directory once) and the resident set (sessions ready to
// run). Loading = creating a session from host bytes; that is the cost a cache saves.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parentPort, workerData } from "node:worker_threads";
import * as ort from "onnxruntime-node";

const { dir, files, threads, D, graphOptimization } = workerData;
/** @type {Map<number, Uint8Array>} */
const host = new Map();
/** @type {Map<number, import("onnxruntime-node").InferenceSession>} */
const resident = new Map();

const sessionOptions = {
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  executionMode: "sequential",
  graphOptimizationLevel: graphOptimization,
  enableCpuMemArena: true,
  extra: { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } },
};

function hostBytes(id) {
  let b = host.get(id);
  if (!b) {
    const file = files[id];
    if (!file) throw Object.assign(new Error(`expert ${id} is not in the manifest`), { code: "NOT_FOUND" });
    b = readFileSync(join(dir, file));
    host.set(id, b);
  }
  return b;
}

async function load(id) {
  if (resident.has(id)) return 0;
  const t0 = performance.now();
  resident.set(id, await ort.InferenceSession.create(hostBytes(id), sessionOptions));
  return performance.now() - t0;
}

async function evict(ids) {
  for (const id of ids) {
    const s = resident.get(id);
    if (!s) continue;
    resident.delete(id);
    await s.release();
  }
}

// Commands run strictly in arrival order (a stream): a prefetch sent after a layer's
// run happens after it, an eviction never overtakes the run that uses the expert.
let queue = Promise.resolve();
parentPort.on("message", (cmd) => {
  queue = queue.then(() => handle(cmd)).catch((e) => parentPort.postMessage({ seq: cmd.seq, error: String(e?.message ?? e), code: e?.code }));
});

async function handle(cmd) {
  switch (cmd.op) {
    case "host": {
      const t0 = performance.now();
      let bytes = 0;
      for (const id of cmd.ids) bytes += hostBytes(id).byteLength;
      parentPort.postMessage({ seq: cmd.seq, ms: performance.now() - t0, bytes });
      return;
    }
    case "load": {
      let ms = 0;
      for (const id of cmd.ids) ms += await load(id);
      parentPort.postMessage({ seq: cmd.seq, ms });
      return;
    }
    case "evict":
      await evict(cmd.ids);
      parentPort.postMessage({ seq: cmd.seq });
      return;
    case "run": {
      // experts: global ids; offsets: row ranges of x ([n, D]) per expert, in order.
      const { experts, offsets, x } = cmd;
      const y = new Float32Array(x.length);
      let loadMs = 0;
      let computeMs = 0;
      const loaded = [];
      for (let i = 0; i < experts.length; i++) {
        const id = experts[i];
        const b = offsets[i];
        const end = offsets[i + 1];
        if (end === b) continue;
        if (!resident.has(id)) {
          loadMs += await load(id);
          loaded.push(id);
        }
        const t0 = performance.now();
        const out = await resident.get(id).run({ u: new ort.Tensor("float32", x.subarray(b * D, end * D), [end - b, D]) });
        y.set(out.y.data, b * D);
        computeMs += performance.now() - t0;
      }
      parentPort.postMessage({ seq: cmd.seq, y, loadMs, computeMs, loaded }, [y.buffer]);
      return;
    }
    case "resident":
      parentPort.postMessage({ seq: cmd.seq, ids: [...resident.keys()], hostIds: [...host.keys()] });
      return;
    case "close":
      await evict([...resident.keys()]);
      host.clear();
      parentPort.postMessage({ seq: cmd.seq });
      return;
    default:
      throw new Error(`unknown device command ${cmd.op}`);
  }
}
