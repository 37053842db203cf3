/** Wakes waiters when something changes (worker membership), or after a timeout. */
export interface ChangeSignal {
  notify(): void;
  /** Resolves on the next notify() or after `ms`. */
  changed(ms: number): Promise<void>;
}

export function createChangeSignal(): ChangeSignal {
  let waiters: (() => void)[] = [];
  return {
    notify() {
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    },
    changed(ms: number) {
      return new Promise<void>((resolve) => {
        const t = setTimeout(resolve, ms);
        waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    },
  };
}
