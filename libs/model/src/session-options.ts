import type * as ort from "onnxruntime-node";

/** The options of every session the model's parts run in (here and on a part thread). */
export function sessionOptions(threads: number): ort.InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    enableCpuMemArena: true,
    // Every session has its own intra-op pool; spinning pools starve each other and
    // the JS thread (measured: 4x slower steps at 2 threads with spinning on).
    extra: { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } },
  };
}
