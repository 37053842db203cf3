import { describe, expect, it } from "vitest";
import { Code, codeFromValue } from "./code";
import { SwitchyardError, formatFieldPath, invalidArgument } from "./switchyard-error";

describe("SwitchyardError", () => {
  it("leads the message with the code and keeps the cause", () => {
    const cause = new Error("disk");
    const e = new SwitchyardError("model not loaded", Code.FailedPrecondition, { cause });
    expect(e.message).toBe("[failed_precondition] model not loaded");
    expect(e.rawMessage).toBe("model not loaded");
    expect(e.cause).toBe(cause);
    expect(e.code).toBe(9);
  });

  it("from() keeps SwitchyardErrors, maps gRPC-like codes and wraps the rest", () => {
    const own = new SwitchyardError("x", Code.NotFound);
    expect(SwitchyardError.from(own)).toBe(own);
    const grpcLike = Object.assign(new Error("gone"), { code: 14 });
    expect(SwitchyardError.from(grpcLike).code).toBe(Code.Unavailable);
    expect(SwitchyardError.from("boom").code).toBe(Code.Unknown);
    expect(SwitchyardError.from(new Error("x"), Code.Internal).code).toBe(Code.Internal);
    const abort = new Error("aborted");
    abort.name = "AbortError";
    expect(SwitchyardError.from(abort).code).toBe(Code.Canceled);
  });

  it("invalidArgument names the field", () => {
    const e = invalidArgument("steps", "0 must be >= 1 and <= 1000");
    expect(e.message).toBe("[invalid_argument] steps 0 must be >= 1 and <= 1000");
    expect(e.field).toBe("steps");
    expect(e.code).toBe(Code.InvalidArgument);
  });

  it("parses codes from numbers and names", () => {
    expect(codeFromValue("resource_exhausted")).toBe(Code.ResourceExhausted);
    expect(codeFromValue(3)).toBe(Code.InvalidArgument);
    expect(codeFromValue(99)).toBeUndefined();
    expect(codeFromValue("nope")).toBeUndefined();
  });

  it("formats field paths", () => {
    expect(formatFieldPath(["images", 0, "steps"])).toBe("images[0].steps");
    expect(formatFieldPath([])).toBe("");
  });
});
