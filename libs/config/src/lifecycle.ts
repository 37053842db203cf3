import { SwitchyardError } from "@switchyard/errors";

/**
 * Runs a service's main: starts it, stops it once on SIGTERM/SIGINT, exits 0 after a
 * clean stop and 1 when start-up fails (printing the error with its code).
 */
export function runService(name: string, start: () => Promise<{ stop(): Promise<void> }>): void {
  start().then(
    (svc) => {
      let stopping = false;
      const stop = () => {
        if (stopping) return;
        stopping = true;
        svc.stop().then(
          () => process.exit(0),
          (e: unknown) => {
            console.error(`${name}: error while stopping: ${SwitchyardError.from(e).message}`);
            process.exit(1);
          },
        );
      };
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
    },
    (e: unknown) => {
      console.error(`${name}: ${SwitchyardError.from(e).message}`);
      process.exit(1);
    },
  );
}
