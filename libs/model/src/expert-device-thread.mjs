// The expert device: a thread that holds the resident experts and runs them, in the
// order commands arrive, like a GPU stream. Plain JavaScript so that it starts under
// node, tsx and vitest alike. Protocol: see expert-device.ts.
//
// Two memory tiers: the host store (every expert this worker may need, staged by the
// caller: its part's bytes and, where the part splits, its weights and graph skeleton;
// see expert-weights.ts) and the resident set. Loading an expert whose part splits is
// copying its weights into device memory: one session per skeleton runs every such
// expert, fed the weights with the rows (checked bitwise against the part's own session
// when the skeleton is first used). Other experts load by creating a session from their
// bytes.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parentPort, workerData } from "node:worker_threads";
import * as ort from "onnxruntime-node";

const { dir, files, threads, D, graphOptimization, executionProviders } = workerData;
/** @type {Map<number, { bytes: Uint8Array, key?: string, tensors?: { name: string, dims: number[], data: Float32Array }[] }>} */
const host = new Map();
/** @type {Map<string, Uint8Array>} skeleton bytes by key */
const skeletonBytes = new Map();
/** @type {Map<string, Promise<import("onnxruntime-node").InferenceSession | null>>} */
const skeletons = new Map();
/** @type {Map<number, { session: import("onnxruntime-node").InferenceSession, weights?: Record<string, import("onnxruntime-node").Tensor> }>} */
const resident = new Map();

const sessionOptions = {
  executionProviders,
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  executionMode: "sequential",
  graphOptimizationLevel: graphOptimization,
  enableCpuMemArena: true,
  extra: { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } },
};

function hostEntry(id) {
  let h = host.get(id);
  if (!h) {
    const file = files[id];
    if (!file) throw Object.assign(new Error(`expert ${id} is not in the manifest`), { code: "NOT_FOUND" });
    h = { bytes: readFileSync(join(dir, file)) };
    host.set(id, h);
  }
  return h;
}

/** Rows fed to a skeleton session: one row is sent as two (a one-row Gemm over weights fed as inputs takes another kernel than the part's prepacked one; two rows give the part's one-row result bitwise). */
function rowsFor(x, n) {
  if (n !== 1) return { u: new ort.Tensor("float32", x, [n, D]), take: n };
  const two = new Float32Array(2 * D);
  two.set(x);
  two.set(x, D);
  return { u: new ort.Tensor("float32", two, [2, D]), take: 1 };
}

const PROBE_ROWS = [1, 2, 3, 17, 64];

/** The skeleton's session, or null when it does not give the part's outputs bitwise (then its experts load as sessions). */
function skeletonSession(key, h) {
  let p = skeletons.get(key);
  if (!p) {
    p = (async () => {
      const bytes = skeletonBytes.get(key);
      if (!bytes) return null;
      let session;
      try {
        session = await ort.InferenceSession.create(bytes, sessionOptions);
      } catch (e) {
        process.emitWarning(`cannot create a session for expert weights fed as inputs (${e?.message ?? e}); experts of this graph load as sessions`, { code: "SWITCHYARD_EXPERT_WEIGHTS" });
        return null;
      }
      const part = await ort.InferenceSession.create(h.bytes, sessionOptions);
      const weights = tensorsOf(h.tensors);
      try {
        for (const n of PROBE_ROWS) {
          const x = Float32Array.from({ length: n * D }, (_, i) => Math.sin(0.37 * i + n));
          const want = (await part.run({ u: new ort.Tensor("float32", x, [n, D]) })).y.data;
          const { u, take } = rowsFor(x, n);
          const got = (await session.run({ u, ...weights })).y.data.subarray(0, take * D);
          if (got.length !== want.length || !got.every((v, i) => Object.is(v, want[i]))) {
            process.emitWarning(`expert weights fed as inputs differ from the part at ${n} rows; experts of this graph load as sessions`, { code: "SWITCHYARD_EXPERT_WEIGHTS" });
            await session.release();
            return null;
          }
        }
      } finally {
        await part.release();
      }
      return session;
    })();
    skeletons.set(key, p);
  }
  return p;
}

/** Device memory for an expert's weights: its own copies (the load), as the tensors a run feeds. */
function tensorsOf(list) {
  return Object.fromEntries(list.map((t) => [t.name, new ort.Tensor("float32", t.data.slice(), t.dims)]));
}

async function load(id) {
  if (resident.has(id)) return 0;
  const t0 = performance.now();
  const h = hostEntry(id);
  const skel = h.key && h.tensors ? await skeletonSession(h.key, h) : null;
  if (skel) resident.set(id, { session: skel, weights: tensorsOf(h.tensors) });
  else resident.set(id, { session: await ort.InferenceSession.create(h.bytes, sessionOptions) });
  return performance.now() - t0;
}

async function evict(ids) {
  for (const id of ids) {
    const s = resident.get(id);
    if (!s) continue;
    resident.delete(id);
    // a skeleton's session serves other experts: only an expert's own session goes
    if (!s.weights) await s.session.release();
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
      // entries staged by the caller: { id, bytes, key?, tensors? }, and new skeletons by key
      const t0 = performance.now();
      let bytes = 0;
      for (const [key, b] of Object.entries(cmd.skeletons ?? {})) skeletonBytes.set(key, b);
      for (const e of cmd.entries) {
        host.set(e.id, { bytes: e.bytes, ...(e.key ? { key: e.key, tensors: e.tensors } : {}) });
        bytes += e.bytes.byteLength;
      }
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
        const r = resident.get(id);
        const rows = x.subarray(b * D, end * D);
        if (r.weights) {
          const { u, take } = rowsFor(rows, end - b);
          y.set((await r.session.run({ u, ...r.weights })).y.data.subarray(0, take * D), b * D);
        } else y.set((await r.session.run({ u: new ort.Tensor("float32", rows, [end - b, D]) })).y.data, b * D);
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
      for (const p of skeletons.values()) await (await p.catch(() => null))?.release();
      skeletons.clear();
      host.clear();
      parentPort.postMessage({ seq: cmd.seq });
      return;
    default:
      throw new Error(`unknown device command ${cmd.op}`);
  }
}
