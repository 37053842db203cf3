import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { BUNDLED_MODEL_DIR } from "@switchyard/model";

/**
 * The PyTorch side of `bench:engine` (#17): the model rebuilt from the committed ONNX
 * parts must compute what the parts compute, on the golden inputs, or the benchmark
 * compares different work. Needs PyTorch (tools/model-zoo/requirements.txt; a ~3 GB
 * install that `.ci/run` does not make): skipped without it, unless
 * SWITCHYARD_TORCH_REQUIRED=1, where it fails.
 */
const haveTorch = spawnSync("python3", ["-c", "import torch, onnx"], { stdio: "ignore" }).status === 0;
if (process.env.SWITCHYARD_TORCH_REQUIRED === "1" && !haveTorch) throw new Error("PyTorch and onnx are required (SWITCHYARD_TORCH_REQUIRED=1): pip install -r tools/model-zoo/requirements.txt");
const script = fileURLToPath(new URL("../../model-zoo/check_rebuild.py", import.meta.url));

describe.skipIf(!haveTorch)("the PyTorch model rebuilt from the ONNX parts", () => {
  it("matches every part's golden outputs and the whole model's velocity within 1e-4", () => {
    const r = spawnSync("python3", [script, BUNDLED_MODEL_DIR], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { ok: boolean; max_abs_diff: number; checked: number };
    console.log(`rebuilt PyTorch model vs golden: max |diff| ${out.max_abs_diff.toExponential(2)} over ${out.checked} outputs`);
    expect(out.ok).toBe(true);
    expect(out.checked).toBeGreaterThan(200); // embed, 6 × (dense 4 + 32 experts + shared), final, model
  });
});
