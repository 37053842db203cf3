import type * as grpc from "@grpc/grpc-js";
import { toGrpcStatus } from "@switchyard/proto";

/**
 * The one unary handler of the gateway's gRPC services (native and KServe v2):
 * authorizes the call's metadata, runs `fn` (sync or async) and answers with its result
 * or with the error as a gRPC status (SwitchyardError codes are gRPC codes; the
 * message names the field).
 */
export function unaryHandler(authorize: (md: grpc.Metadata) => void) {
  return <Req>(fn: (req: Req, call: grpc.ServerUnaryCall<Req, unknown>) => unknown | Promise<unknown>) =>
    (call: grpc.ServerUnaryCall<Req, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      (async () => {
        authorize(call.metadata);
        return fn(call.request, call);
      })().then(
        (r) => cb(null, r),
        (e) => cb(toGrpcStatus(e)),
      );
    };
}
