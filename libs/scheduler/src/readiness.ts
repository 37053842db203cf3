/**
 * The scheduler's readiness: the latest "ready: plan vN over W workers, …" line, and
 * those waiting for one (launchers, the embedded cluster, `whenReady`).
 */
export interface Readiness {
  /** A plan came into force over `workers` workers (and was warmed up or not): this line says so. */
  announce(workers: number, line: string): void;
  /** Resolves with the line once a plan is in force over `workers` workers (any, when omitted). */
  when(workers?: number): Promise<string>;
}

export function createReadiness(): Readiness {
  const waiters: { workers: number | undefined; resolve: (line: string) => void }[] = [];
  let last: { workers: number; line: string } | undefined;
  return {
    announce(workers, line) {
      last = { workers, line };
      for (const w of waiters.splice(0)) {
        if (w.workers === undefined || w.workers === workers) w.resolve(line);
        else waiters.push(w);
      }
    },
    when(workers) {
      if (last && (workers === undefined || last.workers === workers)) return Promise.resolve(last.line);
      return new Promise((resolve) => waiters.push({ workers, resolve }));
    },
  };
}
