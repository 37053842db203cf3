import * as grpc from "@grpc/grpc-js";
import { Code, SwitchyardError } from "@switchyard/errors";

/**
 * The one place gRPC statuses and SwitchyardErrors are translated. Codes are equal
 * by construction; the field travels in the `sy-field` trailer.
 */
export function toGrpcStatus(e: unknown): Partial<grpc.StatusObject> {
  const err = SwitchyardError.from(e, Code.Internal);
  const metadata = new grpc.Metadata();
  if (err.field) metadata.set("sy-field", err.field);
  return { code: err.code as number as grpc.status, details: err.message, metadata };
}

export function fromGrpcError(e: unknown): SwitchyardError {
  if (e instanceof SwitchyardError) return e;
  const ge = e as Partial<grpc.ServiceError>;
  if (typeof ge?.code === "number") {
    const details = ge.details ?? ge.message ?? "";
    const raw = details.replace(/^\[[a-z_]+\] /, "");
    const field = ge.metadata?.get("sy-field")[0];
    return new SwitchyardError(raw, ge.code as number as Code, { cause: e, ...(typeof field === "string" ? { field } : {}) });
  }
  return SwitchyardError.from(e);
}
