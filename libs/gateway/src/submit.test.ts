import { describe, expect, it } from "vitest";
import { Code } from "@switchyard/errors";
import { caught } from "@switchyard/errors/testing";
import { BUNDLED_MODEL_DIR, loadManifest } from "@switchyard/manifest";
import { buildSubmit, maxPreviewImages } from "./submit";

const m = loadManifest(BUNDLED_MODEL_DIR);

const fail = caught;

describe("buildSubmit", () => {
  it("applies defaults, draws a seed and an id", () => {
    const s = buildSubmit({ params: { label: 3 } }, m);
    expect(s.params).toMatchObject({ label: 3, count: 1, steps: m.sampling.defaultSteps, sampler: m.sampling.defaultSampler });
    expect(Number.isInteger(s.params.seed)).toBe(true);
    expect(s.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(s).toMatchObject({ priority: 0, deadlineMs: null, previewInterval: 0 });
  });

  it("refuses previews for more images than one bus message can carry (#12 defect 1)", () => {
    // 28×28 float32 previews: 4184 base64 bytes + 3 each, 1 MiB per event
    expect(maxPreviewImages(m)).toBe(250);
    expect(buildSubmit({ params: { count: 250 }, previewInterval: 1 }, m).params.count).toBe(250);
    expect(buildSubmit({ params: { count: 256 } }, m).params.count).toBe(256);
    const e = fail(() => buildSubmit({ params: { count: 256, steps: 2 }, previewInterval: 1 }, m));
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.field).toBe("preview_interval");
    expect(e.message).toContain("use count <= 250 or preview_interval 0");
  });

  it("names the protocol's fields", () => {
    const names = { priority: "parameters.priority", previewInterval: "parameters.preview_interval", requestId: "id", paramPrefix: "parameters" };
    expect(fail(() => buildSubmit({ params: { steps: 0 } }, m, names)).field).toBe("parameters.steps");
    expect(fail(() => buildSubmit({ params: {}, priority: 1001 }, m, names)).message).toContain("parameters.priority 1001 must be an integer >= -1000 and <= 1000");
    expect(fail(() => buildSubmit({ params: {}, requestId: "x".repeat(129) }, m)).message).toContain("request_id has 129 characters; at most 128 allowed");
  });
});
