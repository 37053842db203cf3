import { describe, expect, it } from "vitest";
import { type CpuProfile, summarizeProfile } from "./profile-summary";

const frame = (functionName: string, url = "") => ({ functionName, url, lineNumber: 0 });

describe("CPU profile summary", () => {
  it("adds self time per category and function, and counts native callees where their caller is", () => {
    const profile: CpuProfile = {
      nodes: [
        { id: 1, callFrame: frame("(root)"), children: [2, 4, 6, 7] },
        { id: 2, callFrame: frame("", "file:///r/node_modules/onnxruntime-node/dist/backend.js"), children: [3] },
        { id: 3, callFrame: frame("run") }, // the native binding
        { id: 4, callFrame: frame("scatterAddWeighted", "file:///r/libs/engine/src/routing.ts"), children: [5] },
        { id: 5, callFrame: frame("(anonymous)") },
        { id: 6, callFrame: frame("(garbage collector)") },
        { id: 7, callFrame: frame("main", "file:///r/tools/x.ts") },
      ],
      startTime: 0,
      endTime: 100,
      samples: [3, 3, 3, 2, 4, 5, 6, 7],
      timeDeltas: [1000, 1000, 1000, 500, 2000, 1000, 1500, 250],
    };
    const s = summarizeProfile(profile);
    expect(s.totalMs).toBeCloseTo(8.25);
    expect(Object.fromEntries(s.categories.map((c) => [c.name, c.ms]))).toEqual({
      "ONNX Runtime (run calls, tensors)": 3.5,
      "routing, gather, scatter (TypeScript)": 3,
      "garbage collector": 1.5,
      "other JavaScript": 0.25,
    });
    expect(s.functions[0]).toMatchObject({ name: "run", ms: 3 });
    expect(s.functions.find((f) => f.name === "scatterAddWeighted")).toMatchObject({ where: "libs/engine/src/routing.ts:1", ms: 2 });
  });
});
