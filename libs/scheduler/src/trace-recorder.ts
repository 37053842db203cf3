import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { encodeSafeTensors, floatToHalf, tensor } from "@switchyard/tensor";
import type { RoutingRecord } from "./service";

/**
 * Records the routing the workers observe, in the `switchyard-trace` v1 layout
 * (models/README.md): one record per image eval (conditional pass) with its step,
 * label, t, and experts/weights [layers, tokens, topK]. Files roll over every
 * `maxRecords` records and on flush(); each is written to a temp name then renamed.
 */
export interface TraceRecorderOptions {
  readonly dir: string;
  readonly model: string;
  readonly layers: number;
  readonly experts: number;
  readonly topK: number;
  readonly tokens: number;
  readonly maxRecords?: number;
}

/** ~8 MB per file at 6 layers × 49 tokens × top-2. */
export const DEFAULT_TRACE_MAX_RECORDS = 5000;

export interface TraceRecorder {
  record(r: RoutingRecord): void;
  /** Writes buffered records (if any) and returns the file written. */
  flush(): string | undefined;
  readonly files: readonly string[];
}

export function createTraceRecorder(o: TraceRecorderOptions): TraceRecorder {
  mkdirSync(o.dir, { recursive: true });
  const per = o.layers * o.tokens * o.topK;
  const max = o.maxRecords ?? DEFAULT_TRACE_MAX_RECORDS;
  const ids = new Map<string, number>();
  let buf: RoutingRecord[] = [];
  const files: string[] = [];
  let seq = 0;
  const flush = (): string | undefined => {
    if (buf.length === 0) return undefined;
    const n = buf.length;
    const experts = o.experts <= 256 ? new Uint8Array(n * per) : new Int16Array(n * per);
    const weights = new Uint16Array(n * per);
    buf.forEach((r, i) => {
      experts.set(r.experts, i * per);
      for (let j = 0; j < per; j++) weights[i * per + j] = floatToHalf(r.weights[j]!);
    });
    const bytes = encodeSafeTensors(
      {
        request: tensor("int32", [n], Int32Array.from(buf, (r) => ids.get(r.requestId)!)),
        step: tensor("int32", [n], Int32Array.from(buf, (r) => r.step)),
        branch: tensor("uint8", [n], new Uint8Array(n)),
        label: tensor("int32", [n], Int32Array.from(buf, (r) => r.label)),
        t: tensor("float32", [n], Float32Array.from(buf, (r) => r.t)),
        experts: experts instanceof Uint8Array ? tensor("uint8", [n, o.layers, o.tokens, o.topK], experts) : tensor("int16", [n, o.layers, o.tokens, o.topK], experts),
        weights: tensor("float16", [n, o.layers, o.tokens, o.topK], weights),
      },
      {
        format: "switchyard-trace", version: "1", model: o.model, layers: String(o.layers), experts: String(o.experts),
        top_k: String(o.topK), tokens: String(o.tokens), source: "scheduler",
      },
    );
    const name = join(o.dir, `trace-${Date.now()}-${String(seq++).padStart(4, "0")}.safetensors`);
    writeFileSync(`${name}.tmp`, bytes);
    renameSync(`${name}.tmp`, name);
    files.push(name);
    buf = [];
    return name;
  };
  return {
    record(r) {
      if (!ids.has(r.requestId)) ids.set(r.requestId, ids.size);
      buf.push(r);
      if (buf.length >= max) flush();
    },
    flush,
    files,
  };
}
