import { createNatsBus, subjects as makeSubjects } from "@switchyard/bus";
import { runService } from "@switchyard/config";
import { DEFAULT_DENSE_THREADS, DEFAULT_DENSE_THREADS_WITH_DEVICE, createOnnxModel } from "@switchyard/model";
import type { Heartbeat } from "@switchyard/scheduler";
import { createWorkerClients, startWorkerServer } from "@switchyard/transport";
import { createWorkerCache, createWorkerRuntime, parseExpertBudget, trafficTotals, warmUpDense } from "@switchyard/worker";
import { resolveWorkerConfig } from "./config";

/** Worker: holds the experts the scheduler assigns, serves ticks and row exchanges. */
runService("worker", async () => {
  const cfg = resolveWorkerConfig();
  const log = (m: string) => console.log(`[worker ${cfg.id}] ${m}`);
  const subjects = makeSubjects(cfg.subjectPrefix);
  const bus = await createNatsBus({ servers: cfg.nats, name: `switchyard-worker ${cfg.id}` });
  // Experts are loaded when the scheduler assigns them (SetExperts), not at start.
  const budget = parseExpertBudget(cfg.expertBudget);
  const denseThreads = cfg.denseThreads ?? (budget ? DEFAULT_DENSE_THREADS_WITH_DEVICE : DEFAULT_DENSE_THREADS);
  const parts = await createOnnxModel({ dir: cfg.modelDir, experts: () => false, denseThreads, expertThreads: cfg.expertThreads });
  const peers = createWorkerClients();
  bus.subscribe(subjects.heartbeat, (p) => {
    const hb = p as unknown as Heartbeat;
    if (hb?.workerId && hb.workerId !== cfg.id) peers.setAddress(hb.workerId, hb.address);
  });
  bus.subscribe(subjects.leave, (p) => {
    const id = (p as { workerId?: string })?.workerId;
    if (id) peers.remove(id);
  });
  // Under a budget, experts live on an expert device with a predictive (or LRU/LFU) cache.
  const residency = budget ? createWorkerCache({ modelDir: cfg.modelDir, manifest: parts.manifest, budget, policy: cfg.cachePolicy, lookahead: cfg.cacheLookahead, threads: cfg.expertThreads, streams: cfg.expertStreams }) : undefined;
  if (budget) log(`expert cache: ${cfg.cachePolicy}, budget ${cfg.expertBudget}, lookahead ${cfg.cacheLookahead}`);
  // Warm before the first heartbeat: the scheduler sends no tick to a worker it has not heard of.
  const warmUp = { rows: cfg.warmUpRows, rounds: cfg.warmUpRounds };
  if (warmUp.rows > 0 && warmUp.rounds > 0) log(`warmed up at ${warmUp.rows} rows × ${warmUp.rounds} in ${(await warmUpDense(parts, warmUp)).toFixed(0)} ms`);
  const runtime = createWorkerRuntime({ id: cfg.id, parts, peers, gate: cfg.gateTurns === "off" ? false : { turns: cfg.gateTurns }, warmUp, ...(residency ? { residency } : {}) });
  const server = await startWorkerServer(runtime, { host: cfg.host, port: cfg.port });
  const address = `${cfg.advertiseHost ?? cfg.host}:${server.port}`;
  const beat = () => bus.publish(subjects.heartbeat, { workerId: cfg.id, address, traffic: trafficTotals(runtime.stats()) });
  beat();
  const timer = setInterval(beat, cfg.heartbeatMs);
  log(`serving data plane on ${address}`);
  return {
    async stop() {
      clearInterval(timer);
      bus.publish(subjects.leave, { workerId: cfg.id });
      await bus.flush().catch(() => undefined);
      await server.stop();
      await runtime.close();
      peers.close();
      await parts.close();
      await bus.close();
      log("stopped");
    },
  };
});
