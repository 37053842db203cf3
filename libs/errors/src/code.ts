/**
 * Error codes, numerically equal to gRPC status codes so that a SwitchyardError maps
 * to a gRPC status (and back) without a table. The set is closed.
 */
export enum Code {
  Canceled = 1,
  Unknown = 2,
  InvalidArgument = 3,
  DeadlineExceeded = 4,
  NotFound = 5,
  AlreadyExists = 6,
  PermissionDenied = 7,
  ResourceExhausted = 8,
  FailedPrecondition = 9,
  Aborted = 10,
  OutOfRange = 11,
  Unimplemented = 12,
  Internal = 13,
  Unavailable = 14,
  DataLoss = 15,
  Unauthenticated = 16,
}

const NAMES: Record<Code, string> = {
  [Code.Canceled]: "canceled",
  [Code.Unknown]: "unknown",
  [Code.InvalidArgument]: "invalid_argument",
  [Code.DeadlineExceeded]: "deadline_exceeded",
  [Code.NotFound]: "not_found",
  [Code.AlreadyExists]: "already_exists",
  [Code.PermissionDenied]: "permission_denied",
  [Code.ResourceExhausted]: "resource_exhausted",
  [Code.FailedPrecondition]: "failed_precondition",
  [Code.Aborted]: "aborted",
  [Code.OutOfRange]: "out_of_range",
  [Code.Unimplemented]: "unimplemented",
  [Code.Internal]: "internal",
  [Code.Unavailable]: "unavailable",
  [Code.DataLoss]: "data_loss",
  [Code.Unauthenticated]: "unauthenticated",
};

/** snake_case name of a code, as in gRPC ("invalid_argument"). */
export function codeToString(code: Code): string {
  return NAMES[code] ?? "unknown";
}

/** Parses a code from its number or snake_case name; undefined when it is not one. */
export function codeFromValue(value: unknown): Code | undefined {
  if (typeof value === "number") return value in NAMES ? (value as Code) : undefined;
  if (typeof value === "string") {
    const hit = (Object.entries(NAMES) as [string, string][]).find(([, n]) => n === value);
    return hit ? (Number(hit[0]) as Code) : undefined;
  }
  return undefined;
}
