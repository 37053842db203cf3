/** Summaries of V8 CPU profiles (the `.cpuprofile` JSON that `node --cpu-prof` writes). */
export interface CpuProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}

export interface CpuProfile {
  readonly nodes: readonly CpuProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface ProfileSummary {
  readonly totalMs: number;
  /** Self time by category, largest first. */
  readonly categories: readonly { name: string; ms: number }[];
  /** Self time by function (name + file:line), largest first. */
  readonly functions: readonly { name: string; where: string; ms: number }[];
}

/**
 * Which part of the hot path a function is: native ONNX Runtime calls show up as the
 * binding's `run` (the sampler sees the JavaScript frame that called into native code),
 * GC as V8's "(garbage collector)" node.
 */
export function categoryOf(frame: CpuProfileNode["callFrame"], caller?: string): string {
  const { functionName: fn, url } = frame;
  if (fn === "(garbage collector)") return "garbage collector";
  if (fn === "(idle)") return "idle (waiting: ONNX Runtime threads, timers)";
  if (fn === "(program)") return "V8 and native, unattributed";
  // A native function (no script) counts where its caller is: the binding's run() is
  // ONNX Runtime computing.
  if (!url && caller !== undefined) return caller;
  if (url.includes("onnxruntime")) return "ONNX Runtime (run calls, tensors)";
  if (/routing\.ts$/.test(url)) return "routing, gather, scatter (TypeScript)";
  if (/engine\.ts$/.test(url)) return "engine combine (TypeScript)";
  if (/sampler/.test(url)) return "sampler (TypeScript)";
  return "other JavaScript";
}

export function summarizeProfile(p: CpuProfile): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const category = new Map<number, string>();
  const categoryOfNode = (id: number): string => {
    let c = category.get(id);
    if (c === undefined) {
      const up = parent.get(id);
      const callerNode = up === undefined ? undefined : byId.get(up);
      const caller = callerNode && callerNode.callFrame.functionName !== "(root)" ? categoryOfNode(up!) : undefined;
      c = categoryOf(byId.get(id)!.callFrame, caller);
      category.set(id, c);
    }
    return c;
  };
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const cats = new Map<string, number>();
  const fns = new Map<string, { name: string; where: string; ms: number }>();
  let total = 0;
  for (const [id, us] of self) {
    const f = byId.get(id)!.callFrame;
    const ms = us / 1000;
    total += ms;
    const c = categoryOfNode(id);
    cats.set(c, (cats.get(c) ?? 0) + ms);
    const file = f.url ? `${f.url.replace(/^.*\/(node_modules|libs|tools)\//, "$1/")}:${f.lineNumber + 1}` : "";
    const key = `${f.functionName}@${file}`;
    const e = fns.get(key) ?? { name: f.functionName || "(anonymous)", where: file, ms: 0 };
    e.ms += ms;
    fns.set(key, e);
  }
  return {
    totalMs: total,
    categories: [...cats].map(([name, ms]) => ({ name, ms })).sort((a, b) => b.ms - a.ms),
    functions: [...fns.values()].sort((a, b) => b.ms - a.ms),
  };
}
