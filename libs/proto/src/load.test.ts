import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { Code, SwitchyardError } from "@switchyard/errors";
import { fromGrpcError, toGrpcStatus } from "./grpc-error";
import { loadContracts, reflectionDefinition } from "./load";

const require = createRequire(import.meta.url);

describe("contracts", () => {
  it("load every service", () => {
    const c = loadContracts();
    expect(Object.keys(c.switchyard)).toEqual(expect.arrayContaining(["Generate", "Cancel", "ListModels", "GetModel"]));
    expect(Object.keys(c.inference)).toEqual(expect.arrayContaining(["ModelInfer", "ModelStreamInfer", "ModelConfig", "ModelStatistics"]));
    expect(Object.keys(c.worker)).toEqual(expect.arrayContaining(["RunTick", "Exchange", "SetExperts", "Stats"]));
  });

  it("serve reflection descriptors with protobuf's map-entry names", () => {
    const def = reflectionDefinition() as Record<string, { fileDescriptorProtos?: Buffer[] }>;
    const codec = require("protobufjs/ext/descriptor").FileDescriptorProto;
    const files = def["inference.ModelInferRequest"]!.fileDescriptorProtos!.map((b) => codec.toObject(codec.decode(b), {}));
    const msg = files.flatMap((f: { messageType?: { name: string; nestedType?: { name: string }[]; field: { name: string; typeName?: string }[] }[] }) => f.messageType ?? []).find((m: { name: string }) => m.name === "ModelInferRequest")!;
    expect(msg.nestedType!.map((n) => n.name)).toContain("ParametersEntry");
    expect(msg.field.find((f) => f.name === "parameters")!.typeName).toMatch(/ParametersEntry$/);
    expect(msg.field.map((f) => f.name)).toContain("raw_input_contents"); // proto names, not camelCase
  });

  it("translate errors to gRPC statuses and back, keeping code and field", () => {
    const st = toGrpcStatus(new SwitchyardError("steps 0 must be >= 1", Code.InvalidArgument, { field: "steps" }));
    expect(st.code).toBe(3);
    const back = fromGrpcError({ code: st.code, details: st.details, metadata: st.metadata, message: "x" });
    expect(back.code).toBe(Code.InvalidArgument);
    expect(back.rawMessage).toBe("steps 0 must be >= 1");
    expect(back.field).toBe("steps");
    expect(toGrpcStatus(new Error("boom")).code).toBe(13);
  });
});
