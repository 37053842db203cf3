import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Code, SwitchyardError } from "@switchyard/errors";
import { resolveGenerateParams } from "./request";
import { BUNDLED_MODEL_DIR, parseManifest } from "./manifest";


const manifest = parseManifest(JSON.parse(readFileSync(join(BUNDLED_MODEL_DIR, "manifest.json"), "utf8")));

function fail(raw: unknown): SwitchyardError {
  try {
    resolveGenerateParams(raw, manifest);
  } catch (e) {
    return SwitchyardError.from(e);
  }
  throw new Error("accepted");
}

describe("generation parameters", () => {
  it("apply the model's defaults", () => {
    expect(resolveGenerateParams({ label: 3 }, manifest)).toEqual({
      label: 3, count: 1, steps: 20, sampler: "euler", guidance: 2, shift: 1, seed: 0,
    });
    expect(resolveGenerateParams(undefined, manifest).label).toBeUndefined();
  });

  it.each([
    [{ steps: 0 }, "steps 0 must be an integer >= 1 and <= 1000"],
    [{ steps: 1e9 }, "steps 1000000000 must be an integer >= 1 and <= 1000"],
    [{ label: 10 }, "label 10 must be an integer >= 0 and <= 9"],
    [{ label: -1 }, "label -1"],
    [{ count: 0 }, "count 0 must be an integer >= 1 and <= 256"],
    [{ sampler: "ddim" }, 'sampler "ddim" must be one of "euler", "heun", "pc"'],
    [{ guidance: Number.NaN }, "guidance"],
    [{ guidance: 100 }, "guidance 100 must be a number >= 0 and <= 30"],
    [{ shift: 0 }, "shift 0 must be a number >= 0.01 and <= 100"],
    [{ seed: 1.5 }, "seed 1.5 must be an integer"],
    [{ stepz: 3 }, "stepz is not a known field"],
  ])("reject %j naming the field", (raw, msg) => {
    const e = fail(raw);
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.message).toContain(msg);
  });
});
