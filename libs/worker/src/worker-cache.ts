import { existsSync } from "node:fs";
import { join } from "node:path";
import { Code, SwitchyardError } from "@switchyard/errors";
import { type Residency, createPolicy, createResidency, successorsFrom } from "@switchyard/expert-cache";
import { type ExecutionProvider, type Manifest, createThreadExpertDevice, loadManifest } from "@switchyard/model";
import { readTrace, transitions } from "@switchyard/trace";

/** A worker's device memory for experts: bytes, or a fraction of the experts it holds. */
export type ExpertBudget = { readonly bytes: number } | { readonly fraction: number };

const UNITS: Record<string, number> = { "": 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3 };

/**
 * "" or "all" → undefined (every held expert resident); "50%" → half of the experts the
 * worker holds; "12MiB", "800kB", "4194304" → bytes.
 */
export function parseExpertBudget(text: string, field = "SWITCHYARD_EXPERT_BUDGET"): ExpertBudget | undefined {
  const s = text.trim().toLowerCase();
  if (s === "" || s === "all") return undefined;
  const pct = /^(\d+(?:\.\d+)?)\s*%$/.exec(s);
  if (pct) {
    const f = Number(pct[1]) / 100;
    if (f > 0 && f <= 1) return { fraction: f };
  }
  const b = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/.exec(s);
  if (b && UNITS[b[2]!] !== undefined) {
    const bytes = Math.floor(Number(b[1]) * UNITS[b[2]!]!);
    if (bytes > 0) return { bytes };
  }
  throw new SwitchyardError(`${field} ${JSON.stringify(text)} must be "all", a percentage in (0, 100] such as "50%", or a byte size such as "12MiB"`, Code.InvalidArgument, { field });
}

export interface WorkerCacheOptions {
  readonly modelDir: string;
  readonly manifest?: Manifest;
  readonly budget: ExpertBudget | undefined;
  /** lru | lfu | predictive */
  readonly policy: string;
  readonly lookahead?: number;
  /** Intra-op threads per expert session. */
  readonly threads?: number;
  /** Expert-device threads (streams); experts are spread over them. */
  readonly streams?: number;
  /** Where the device's expert sessions run (default "cpu"). */
  readonly executionProvider?: ExecutionProvider;
}

/**
 * The experts of a worker on an expert device (a thread holding ONNX Runtime sessions)
 * under the configured budget and policy. Misses are corrected with the model's
 * inter-layer transitions when its directory ships a routing trace (traces/solve).
 */
export function createWorkerCache(o: WorkerCacheOptions): Residency {
  createPolicy(o.policy); // names the field on a bad policy before a thread starts
  const m = o.manifest ?? loadManifest(o.modelDir);
  const L = m.architecture.numLayers;
  const E = m.moe.numExperts;
  const sizes = new Array<number>(L * E).fill(0);
  for (const p of m.parts) if (p.kind === "expert" && p.layer !== undefined && p.expert !== undefined) sizes[p.layer * E + p.expert] = p.bytes;
  const tracePath = join(o.modelDir, "traces/solve.safetensors");
  const successors = existsSync(tracePath) ? successorsFrom(transitions(readTrace(tracePath)), E) : undefined;
  const device = createThreadExpertDevice({ dir: o.modelDir, manifest: m, ...(o.threads ? { threads: o.threads } : {}), ...(o.streams ? { streams: o.streams } : {}), ...(o.executionProvider ? { executionProvider: o.executionProvider } : {}) });
  return createResidency({
    device, layers: L, experts: E, sizeOf: (id) => sizes[id]!, policy: o.policy,
    ...(o.budget && "bytes" in o.budget ? { budgetBytes: o.budget.bytes } : {}),
    ...(o.budget && "fraction" in o.budget ? { budgetFraction: o.budget.fraction } : {}),
    ...(o.lookahead !== undefined ? { lookahead: o.lookahead } : {}),
    ...(successors ? { successors } : {}),
  });
}
