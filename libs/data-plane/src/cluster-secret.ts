import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { Code, SwitchyardError } from "@switchyard/errors";

/**
 * The data plane's per-call authentication: every RunTick, Exchange, SetExperts and
 * Stats call carries the cluster secret in this metadata key, and a worker configured
 * with a secret refuses a call without it (UNAUTHENTICATED). Health and reflection stay
 * open for probes. Shared by a group's scheduler and workers (SWITCHYARD_CLUSTER_SECRET;
 * `switchyard up` generates one, the chart takes it from a Secret). Without one the data
 * plane is open, as in the embedded mode and most tests.
 */
export const CLUSTER_SECRET_METADATA = "switchyard-cluster-secret";

export const DATA_PLANE_ENV = { SWITCHYARD_CLUSTER_SECRET: "clusterSecret" } as const;
export const dataPlaneConfigShape = {
  /** At least 16 characters; unset = the data plane takes calls from anyone. */
  clusterSecret: z.string().min(16).max(1024).optional(),
};

/** A fresh secret (192 bits, base64url). */
export function generateClusterSecret(): string {
  return randomBytes(24).toString("base64url");
}

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/**
 * Checks a call's secret in constant time; UNAUTHENTICATED naming where it is carried
 * (`where`, default the gRPC metadata key) when it is missing or wrong.
 */
export function checkClusterSecret(given: unknown, secret: string | undefined, where = `metadata ${CLUSTER_SECRET_METADATA}`): void {
  if (secret === undefined) return;
  if (typeof given !== "string" || given.length === 0) {
    throw new SwitchyardError(`data-plane call without the cluster secret (${where})`, Code.Unauthenticated);
  }
  if (!timingSafeEqual(digest(given), digest(secret))) {
    throw new SwitchyardError(`data-plane call with a wrong cluster secret (${where})`, Code.Unauthenticated);
  }
}
