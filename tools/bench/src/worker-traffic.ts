/** The workers of a process cluster as a bench sees them: their data-plane clients (addresses from heartbeats) and traffic. */
import { type Bus, channels, subjects as makeSubjects, subscribe } from "@switchyard/contract";
import { createWorkerClients } from "@switchyard/data-plane";

interface WorkerStatsWire {
  layers: { bytesSent: number; bytesReceived: number }[];
}

export type WorkerClients = ReturnType<typeof createWorkerClients>;

/** Bytes that crossed between workers: every byte is received once (rows by owners, outputs by homes). */
export async function bytesMoved(clients: WorkerClients, ids: readonly string[]): Promise<number> {
  const all = await Promise.all(ids.map((w) => clients.stats(w) as Promise<WorkerStatsWire>));
  return all.reduce((s, st) => s + st.layers.reduce((a, l) => a + Number(l.bytesReceived), 0), 0);
}

/** Data-plane clients of the workers under `prefix`, once `workers` of them have sent a heartbeat. */
export async function workerClients(bus: Bus, prefix: string, workers = 2): Promise<WorkerClients> {
  const clients = createWorkerClients();
  const seen = new Set<string>();
  subscribe(bus, channels(makeSubjects(prefix)).heartbeat, (hb) => {
    clients.setAddress(hb.workerId, hb.address);
    seen.add(hb.workerId);
  });
  while (seen.size < workers) await new Promise((r) => setTimeout(r, 100));
  return clients;
}
