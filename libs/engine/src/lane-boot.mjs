// Starts an engine lane's thread from the TypeScript sources (the monorepo, tests): tsx's
// loader is registered in this thread first, since a worker thread does not inherit the
// loader its parent was started with. The image runs the bundled lane instead
// (engine-lane-thread.mjs, built by infra/bundle.mjs). See lanes.ts.
import { workerData } from "node:worker_threads";
import { register } from "tsx/esm/api";

register();
await import(workerData.entry);
