import { expertLoad } from "./placement";
import type { Trace } from "./trace";

export interface TraceStats {
  readonly records: number;
  readonly requests: number;
  readonly layers: number;
  readonly experts: number;
  readonly topK: number;
  readonly tokens: number;
  /** Mean distinct experts one record (image pass) touches per layer. */
  readonly distinctExpertsPerRecordLayer: number;
  /** Per layer: max ÷ mean expert load. */
  readonly expertLoadImbalance: number[];
  /** Tokens whose top-1 expert is the same at the next sampler step (same request, branch, layer). */
  readonly top1KeptNextStep: number | undefined;
}

export function traceStats(t: Trace): TraceStats {
  const per = t.tokens * t.topK;
  const mark = new Int32Array(t.experts);
  let stamp = 0;
  let distinct = 0;
  for (let r = 0; r < t.records; r++)
    for (let l = 0; l < t.layers; l++) {
      stamp++;
      const base = (r * t.layers + l) * per;
      for (let i = 0; i < per; i++) {
        const e = t.routing[base + i]!;
        if (mark[e] !== stamp) {
          mark[e] = stamp;
          distinct++;
        }
      }
    }
  const imbalance = expertLoad(t).map((load) => {
    const mean = load.reduce((a, b) => a + b, 0) / load.length;
    return mean > 0 ? Math.max(...load) / mean : 1;
  });
  // index records by (request, branch, step)
  const key = (r: number, b: number, s: number) => `${r}/${b}/${s}`;
  const at = new Map<string, number>();
  for (let i = 0; i < t.records; i++) at.set(key(t.request[i]!, t.branch[i]!, t.step[i]!), i);
  let kept = 0;
  let pairs = 0;
  for (let i = 0; i < t.records; i++) {
    const j = at.get(key(t.request[i]!, t.branch[i]!, t.step[i]! + 1));
    if (j === undefined) continue;
    for (let l = 0; l < t.layers; l++)
      for (let tok = 0; tok < t.tokens; tok++) {
        const a = t.routing[((i * t.layers + l) * t.tokens + tok) * t.topK]!;
        const b = t.routing[((j * t.layers + l) * t.tokens + tok) * t.topK]!;
        pairs++;
        if (a === b) kept++;
      }
  }
  let requests = 0;
  for (let i = 0; i < t.records; i++) requests = Math.max(requests, t.request[i]! + 1);
  return {
    records: t.records, requests, layers: t.layers, experts: t.experts, topK: t.topK, tokens: t.tokens,
    distinctExpertsPerRecordLayer: t.records ? distinct / (t.records * t.layers) : 0,
    expertLoadImbalance: imbalance,
    top1KeptNextStep: pairs ? kept / pairs : undefined,
  };
}
