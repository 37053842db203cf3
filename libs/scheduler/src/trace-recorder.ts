import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildTrace, encodeTrace } from "@switchyard/trace";
import type { RoutingRecord } from "./service";

/**
 * Records the routing the workers observe, in the `switchyard-trace` v1 layout
 * (models/README.md, written by @switchyard/trace's one encoder): one record per image
 * eval (conditional pass) with its step, label, t, and experts/weights [layers, tokens,
 * topK]. Files roll over every `maxRecords` records and on flush(); each is written to a
 * temp name then renamed.
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
  const max = o.maxRecords ?? DEFAULT_TRACE_MAX_RECORDS;
  const ids = new Map<string, number>();
  let buf: RoutingRecord[] = [];
  const files: string[] = [];
  let seq = 0;
  const flush = (): string | undefined => {
    if (buf.length === 0) return undefined;
    const bytes = encodeTrace(buildTrace(o, buf, ids), o.model, { source: "scheduler", weights: "float16" });
    const name = join(o.dir, `trace-${Date.now()}-${String(seq++).padStart(4, "0")}.safetensors`);
    writeFileSync(`${name}.tmp`, bytes);
    renameSync(`${name}.tmp`, name);
    files.push(name);
    buf = [];
    return name;
  };
  return {
    record(r) {
      buf.push(r);
      if (buf.length >= max) flush();
    },
    flush,
    files,
  };
}
