import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fixMapEntryNames } from "./reflection-fix";

/**
 * The contracts in this package's proto/ (the repository's top-level `proto` links to
 * it) loaded at run time with @grpc/proto-loader (no generated code to keep in sync).
 * Loader options fix how messages look in TypeScript: 64-bit integers as numbers, enums
 * as their names, bytes as Buffers, defaults filled, oneofs named by a virtual field.
 * SWITCHYARD_PROTO_DIR overrides where they are read from (the container image, whose
 * entry points are bundles: /app/proto).
 */
export const PROTO_DIR = process.env.SWITCHYARD_PROTO_DIR ?? new URL("../proto", import.meta.url).pathname;

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

export interface Contracts {
  readonly switchyard: grpc.ServiceDefinition;
  /** KServe v2 / Open Inference Protocol (inference.GRPCInferenceService). */
  readonly inference: grpc.ServiceDefinition;
  readonly worker: grpc.ServiceDefinition;
  readonly packageDefinition: protoLoader.PackageDefinition;
}

let cached: Contracts | undefined;
let reflection: protoLoader.PackageDefinition | undefined;

/** grpc.health.v1, vendored from grpc-health-check 2.1.0 (Apache-2.0; the canonical copy is grpc/grpc-proto's). */
const HEALTH_PROTO_DIR = join(PROTO_DIR, "grpc-health");

/**
 * The same contracts plus grpc.health.v1, loaded with the proto's own field names, as
 * server reflection must serve them (camelCased descriptors break map entries for
 * grpcurl and other reflection clients).
 */
export function reflectionDefinition(): protoLoader.PackageDefinition {
  reflection ??= fixMapEntryNames(
    protoLoader.loadSync(["switchyard/v1/switchyard.proto", "switchyard/v1/worker.proto", "inference/grpc_service.proto", "health/v1/health.proto"], {
      ...LOADER_OPTIONS,
      keepCase: true,
      includeDirs: [PROTO_DIR, HEALTH_PROTO_DIR],
    }),
  );
  return reflection;
}

export function loadContracts(): Contracts {
  if (cached) return cached;
  const packageDefinition = protoLoader.loadSync(["switchyard/v1/switchyard.proto", "switchyard/v1/worker.proto", "inference/grpc_service.proto"], LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(packageDefinition) as unknown as {
    switchyard: { v1: { Switchyard: grpc.ServiceClientConstructor }; worker: { v1: { Worker: grpc.ServiceClientConstructor } } };
    inference: { GRPCInferenceService: grpc.ServiceClientConstructor };
  };
  cached = {
    switchyard: pkg.switchyard.v1.Switchyard.service,
    worker: pkg.switchyard.worker.v1.Worker.service,
    inference: pkg.inference.GRPCInferenceService.service,
    packageDefinition,
  };
  return cached;
}

/** A client constructor for a loaded service. */
export function clientFor(service: grpc.ServiceDefinition, name: string): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(service, name);
}
