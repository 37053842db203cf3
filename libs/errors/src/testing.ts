import { SwitchyardError } from "./switchyard-error";

/** The SwitchyardError a function throws; fails the test if it throws nothing. */
export function caught(f: () => unknown): SwitchyardError {
  try {
    f();
  } catch (e) {
    return SwitchyardError.from(e);
  }
  throw new Error("expected an error, none was thrown");
}

/** The SwitchyardError a promise rejects with; fails the test if it resolves. */
export async function rejection(p: Promise<unknown>): Promise<SwitchyardError> {
  try {
    await p;
  } catch (e) {
    return SwitchyardError.from(e);
  }
  throw new Error("expected a rejection, the promise resolved");
}
