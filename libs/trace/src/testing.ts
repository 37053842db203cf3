import type { Trace } from "./format";

/** A trace built by hand for tests: routing[record][layer][token][k] expert ids. */
export function syntheticTrace(routing: number[][][][], experts: number, request?: number[]): Trace {
  const records = routing.length;
  const layers = routing[0]!.length;
  const tokens = routing[0]![0]!.length;
  const topK = routing[0]![0]![0]!.length;
  return {
    layers, experts, topK, tokens, records,
    request: Int32Array.from(request ?? routing.map((_, i) => i)),
    step: new Int32Array(records), branch: new Uint8Array(records), label: new Int32Array(records), t: new Float32Array(records),
    routing: Int16Array.from(routing.flat(3)), weights: undefined,
  };
}
