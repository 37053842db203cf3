import type { SwitchyardError } from "@switchyard/errors";
import type { TickRequestMsg, TickResponseMsg } from "@switchyard/proto";

/**
 * The workers as a scheduler drives them: the contract between the scheduler and either
 * pool (workers in other processes over gRPC, or runtimes in this process).
 */
export interface WorkerPool {
  /** Live workers, sorted. */
  members(): readonly string[];
  /** Owner worker per global expert id under the plan in force. */
  owners(): readonly string[];
  /** Redundant copies per global expert id under the plan in force, if any. */
  replicas?(): readonly (readonly string[])[] | undefined;
  planVersion(): number;
  runTick(worker: string, req: TickRequestMsg): Promise<TickResponseMsg>;
  /** A worker failed a tick: drop it and move its experts to the survivors. */
  markFailed(worker: string, reason: SwitchyardError): Promise<void>;
  /** Resolves when membership changes or after `ms`. */
  changed(ms: number): Promise<void>;
  /** Called at every tick boundary: apply pending membership and plan changes. */
  prepare?(): Promise<void>;
}

