import { describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { Code } from "@switchyard/errors";
import { rejection } from "@switchyard/errors/testing";
import { checkClusterSecret, generateClusterSecret } from "./cluster-secret";
import { createWorkerClients, startWorkerServer } from "./worker-grpc";

describe("the data plane's cluster secret (#12 defect 4: any local process could call a worker)", () => {
  it("refuses, over a real gRPC socket, a call without the secret or with a wrong one, and serves the right one; health stays open", async () => {
    const secret = generateClusterSecret();
    const calls: string[] = [];
    const server = await startWorkerServer(
      {
        runTick: () => Promise.reject(new Error("unused")),
        exchange: () => Promise.reject(new Error("unused")),
        setExperts: async (ids: number[]) => (calls.push(`setExperts ${ids.length}`), { loaded: ids.length, dropped: 0 }),
        stats: async () => (calls.push("stats"), {}),
      } as never,
      { clusterSecret: secret },
    );
    const as = (s?: string) => {
      const c = createWorkerClients(s ? { clusterSecret: s } : {});
      c.setAddress("w", server.address);
      return c;
    };
    const [anonymous, wrong, member] = [as(), as(generateClusterSecret()), as(secret)];
    try {
      const e1 = await rejection(anonymous.setExperts("w", []));
      expect([e1.code, e1.message]).toEqual([Code.Unauthenticated, expect.stringContaining("data-plane call without the cluster secret (metadata switchyard-cluster-secret)")]);
      const e2 = await rejection(wrong.stats("w"));
      expect([e2.code, e2.message]).toEqual([Code.Unauthenticated, expect.stringContaining("wrong cluster secret")]);
      expect(calls).toEqual([]); // the handler never ran (before: SetExperts dropped 132 experts)
      expect(await member.setExperts("w", [1, 2, 3])).toEqual({ loaded: 3, dropped: 0 });
      expect(calls).toEqual(["setExperts 3"]);
      // grpc.health.v1 Check of "" (an empty request) without the secret: status SERVING (field 1 = 1)
      const h = new grpc.Client(server.address, grpc.credentials.createInsecure());
      const reply = await new Promise<Buffer>((resolve, reject) =>
        h.makeUnaryRequest("/grpc.health.v1.Health/Check", () => Buffer.alloc(0), (b: Buffer) => b, {}, (e, r) => (e ? reject(e) : resolve(r!))),
      );
      expect([...reply]).toEqual([0x08, 0x01]);
      h.close();
    } finally {
      for (const c of [anonymous, wrong, member]) c.close();
      await server.stop();
    }
  });

  it("is open when none is configured, and compares in constant time otherwise", () => {
    expect(() => checkClusterSecret(undefined, undefined)).not.toThrow();
    expect(() => checkClusterSecret("a".repeat(20), "a".repeat(20))).not.toThrow();
    expect(() => checkClusterSecret("a".repeat(19), "a".repeat(20))).toThrow(/wrong cluster secret/);
    expect(() => checkClusterSecret(undefined, "a".repeat(20))).toThrow(/without the cluster secret/);
  });
});
