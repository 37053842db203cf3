import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Code, SwitchyardError } from "@switchyard/errors";
import { BUNDLED_MODEL_DIR, indexParts, loadManifest } from "@switchyard/manifest";
import { type ModelParts, SHARED_THREAD_MIN_ROWS, createOnnxModel } from "./onnx-model";
import { type PartThread, createPartThread } from "./part-thread";

const manifest = loadManifest(BUNDLED_MODEL_DIR);
const index = indexParts(manifest);
const D = manifest.architecture.hiddenSize;
const L = manifest.architecture.numLayers;
const sharedFiles = index.shared.map((p) => p!.file);

const bitwise = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
const rowsOf = (n: number, seed: number) => Float32Array.from({ length: n * D }, (_, i) => Math.sin(0.013 * i + seed));

describe("a part thread", () => {
  let thread: PartThread;
  beforeAll(async () => {
    thread = await createPartThread({ dir: BUNDLED_MODEL_DIR, files: sharedFiles });
  });
  afterAll(() => thread.close());

  it("runs parts and names a bad part index", async () => {
    const y = await thread.run(0, { u: { data: rowsOf(3, 1), dims: [3, D] } }, "y");
    expect(y.length).toBe(3 * D);
    const e = await thread.run(L, { u: { data: rowsOf(3, 1), dims: [3, D] } }, "y").catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SwitchyardError);
    expect((e as Error).message).toMatch(new RegExp(`part ${L} must be < ${L}`));
    expect(thread.alive).toBe(true); // a failed call does not end the thread
  });

  it("sends only a view's own rows", async () => {
    // 5 rows of a bigger buffer: the thread must get those 5, not the buffer from its start.
    const big = rowsOf(40, 2);
    const view = big.subarray(7 * D, 12 * D);
    const alone = await thread.run(1, { u: { data: view.slice(), dims: [5, D] } }, "y");
    expect(bitwise(await thread.run(1, { u: { data: view, dims: [5, D] } }, "y"), alone)).toBe(true);
    expect(big.length).toBe(40 * D); // the caller's buffer stays where it was (copied, not transferred)
  });

  it("fails to start with DATA_LOSS naming a part it cannot load", async () => {
    const e = await createPartThread({ dir: BUNDLED_MODEL_DIR, files: ["parts/no-such-part.onnx"] }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SwitchyardError);
    expect((e as SwitchyardError).code).toBe(Code.DataLoss);
    expect((e as Error).message).toMatch(/no-such-part\.onnx/);
  });

  it("refuses a bad thread count, naming the field", async () => {
    const e = await createPartThread({ dir: BUNDLED_MODEL_DIR, files: sharedFiles, threads: 0 }).catch((x: unknown) => x);
    expect((e as SwitchyardError).field).toBe("threads");
    expect((e as Error).message).toMatch(/threads 0 must be an integer >= 1/);
  });

  it("refuses calls once closed", async () => {
    const t = await createPartThread({ dir: BUNDLED_MODEL_DIR, files: sharedFiles.slice(0, 1) });
    await t.close();
    expect(t.alive).toBe(false);
    const e = await t.run(0, { u: { data: rowsOf(2, 3), dims: [2, D] } }, "y").catch((x: unknown) => x);
    expect((e as SwitchyardError).code).toBe(Code.FailedPrecondition);
  });
});

describe("the shared expert on a thread of its own", () => {
  let onThread: ModelParts;
  let here: ModelParts;
  beforeAll(async () => {
    const experts = () => false; // only the dense-side parts matter here
    [onThread, here] = await Promise.all([createOnnxModel({ dir: BUNDLED_MODEL_DIR, experts, sharedThread: true }), createOnnxModel({ dir: BUNDLED_MODEL_DIR, experts, sharedThread: false })]);
  });
  afterAll(async () => {
    await onThread.close();
    await here.close();
  });

  it("gives bitwise the calling thread's outputs, above and below its row threshold", async () => {
    expect(onThread.sharedOffThread?.(SHARED_THREAD_MIN_ROWS)).toBe(true);
    expect(onThread.sharedOffThread?.(SHARED_THREAD_MIN_ROWS - 1)).toBe(false);
    expect(here.sharedOffThread?.(SHARED_THREAD_MIN_ROWS)).toBe(false);
    for (const rows of [1, 98, SHARED_THREAD_MIN_ROWS, 333, 3136]) {
      for (let l = 0; l < L; l++) {
        const u = rowsOf(rows, l + rows);
        expect(bitwise(await onThread.shared(l, u, rows), await here.shared(l, u, rows)), `layer ${l}, ${rows} rows`).toBe(true);
      }
    }
  });

  it("runs calls from several layers at once in their own order", async () => {
    const rows = 400;
    const inputs = Array.from({ length: L }, (_, l) => rowsOf(rows, 10 + l));
    const got = await Promise.all(inputs.map((u, l) => onThread.shared(l, u, rows)));
    for (let l = 0; l < L; l++) expect(bitwise(got[l]!, await here.shared(l, inputs[l]!, rows))).toBe(true);
  });

  it("moves to the calling thread, with a warning, when the thread dies", async () => {
    // A thread that works for one call, then dies as a crashed one does (UNAVAILABLE from then on).
    let calls = 0;
    let alive = true;
    const dying = async (o: Parameters<typeof createPartThread>[0]): Promise<PartThread> => {
      const real = await createPartThread(o);
      return {
        run: (...a) => (++calls === 1 ? real.run(...a) : ((alive = false), Promise.reject(new SwitchyardError("the part thread exited (code 1)", Code.Unavailable)))),
        get alive() {
          return alive && real.alive;
        },
        close: () => real.close(),
      };
    };
    const parts = await createOnnxModel({ dir: BUNDLED_MODEL_DIR, experts: () => false, sharedThread: true, startPartThread: dying });
    const warn = vi.spyOn(process, "emitWarning").mockImplementation(() => undefined);
    try {
      const u = rowsOf(300, 5);
      const want = await here.shared(2, u, 300);
      expect(bitwise(await parts.shared(2, u, 300), want)).toBe(true); // on the thread
      expect(bitwise(await parts.shared(2, u, 300), want)).toBe(true); // the thread died during this call: run here
      expect(parts.sharedOffThread?.(300)).toBe(false);
      expect(bitwise(await parts.shared(2, u, 300), want)).toBe(true);
      expect(calls).toBe(2);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]![0])).toMatch(/exited .*runs on the calling thread from now on/);
    } finally {
      warn.mockRestore();
      await parts.close();
    }
  });

  it("starts without it, with a warning, when the thread cannot start", async () => {
    const warn = vi.spyOn(process, "emitWarning").mockImplementation(() => undefined);
    try {
      const parts = await createOnnxModel({ dir: BUNDLED_MODEL_DIR, experts: () => false, sharedThread: true, startPartThread: () => Promise.reject(new SwitchyardError("the part thread did not start: no threads here", Code.Unavailable)) });
      expect(parts.sharedOffThread?.(SHARED_THREAD_MIN_ROWS)).toBe(false);
      const u = rowsOf(300, 6);
      expect(bitwise(await parts.shared(0, u, 300), await here.shared(0, u, 300))).toBe(true);
      expect(String(warn.mock.calls[0]![0])).toMatch(/did not start: no threads here; the shared expert runs on the calling thread/);
      await parts.close();
    } finally {
      warn.mockRestore();
    }
  });
});
