import { describe, expect, it } from "vitest";
import { Code } from "@switchyard/errors";
import { caught } from "@switchyard/errors/testing";
import { httpStatusOf, parseRestInfer } from "./http";

const binaryBody = (header: unknown, ...chunks: Buffer[]) => {
  const h = Buffer.from(JSON.stringify(header));
  return { body: Buffer.concat([h, ...chunks]), length: String(h.byteLength) };
};

const fail = caught;

describe("parseRestInfer", () => {
  it("reads JSON tensors, flattening nested data", () => {
    const r = parseRestInfer(Buffer.from(JSON.stringify({ id: "a", inputs: [{ name: "LABEL", datatype: "INT32", shape: [2, 1], data: [[3], [7]] }], parameters: { steps: 2 } })), undefined, "m", "");
    expect(r).toMatchObject({ id: "a", modelName: "m", parameters: { steps: 2 }, inputs: [{ name: "LABEL", values: [3, 7] }] });
  });

  it("reads the binary extension: JSON header, then each declared tensor's bytes", () => {
    const labels = Buffer.alloc(8);
    labels.writeInt32LE(5, 0);
    labels.writeInt32LE(-1, 4);
    const { body, length } = binaryBody({ inputs: [{ name: "LABEL", datatype: "INT32", shape: [2, 1], parameters: { binary_data_size: 8 } }], outputs: [{ name: "IMAGE", parameters: { binary_data: true } }] }, labels);
    const r = parseRestInfer(body, length, "m", "1");
    expect(Buffer.from(r.inputs[0]!.raw!)).toEqual(labels);
    expect(r.outputs[0]!.parameters).toEqual({ binary_data: true });
  });

  it("names what is wrong", () => {
    expect(fail(() => parseRestInfer(Buffer.from("{"), undefined, "m", "")).message).toContain("is not valid JSON");
    expect(fail(() => parseRestInfer(Buffer.from('{"inputs":[],"extra":1}'), undefined, "m", "")).message).toContain("extra is not a known field");
    const { body, length } = binaryBody({ inputs: [{ name: "LABEL", datatype: "INT32", shape: [2, 1], parameters: { binary_data_size: 8 } }] }, Buffer.alloc(4));
    expect(fail(() => parseRestInfer(body, length, "m", "")).field).toBe("inputs[0].parameters.binary_data_size");
    expect(fail(() => parseRestInfer(body, "99999", "m", "")).field).toBe("Inference-Header-Content-Length");
    const extra = binaryBody({ inputs: [{ name: "LABEL", datatype: "INT32", shape: [1, 1], parameters: { binary_data_size: 4 } }] }, Buffer.alloc(8));
    expect(fail(() => parseRestInfer(extra.body, extra.length, "m", "")).message).toContain("4 bytes of binary data that no input declares");
    expect(fail(() => parseRestInfer(Buffer.from('{"inputs":[{"name":"LABEL","datatype":"INT32","shape":[1,1]}]}'), undefined, "m", "")).field).toBe("inputs[0].data");
  });

  it("maps codes to HTTP statuses", () => {
    expect([Code.InvalidArgument, Code.Unauthenticated, Code.NotFound, Code.ResourceExhausted, Code.Unavailable, Code.DeadlineExceeded, Code.Internal].map(httpStatusOf)).toEqual([400, 401, 404, 429, 503, 504, 500]);
  });
});
