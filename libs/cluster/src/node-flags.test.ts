import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_SERVICE_NODE_FLAGS } from "./processes";

const REPO = join(__dirname, "../../..");

describe("service Node.js flags", () => {
  it("the image's entry point runs each role with the flags local clusters use", () => {
    const lines = readFileSync(join(REPO, "infra/entrypoint.sh"), "utf8").split("\n");
    const line = (role: string) => lines.find((l) => new RegExp(`^\\s*(\\S+\\|)?${role}(\\|\\S+)?\\)`).test(l)) ?? "";
    for (const role of ["gateway", "scheduler", "worker"]) expect(line(role)).toContain(`exec node ${DEFAULT_SERVICE_NODE_FLAGS.join(" ")} `);
  });

  it("this Node.js takes them", () => {
    const r = spawnSync(process.execPath, [...DEFAULT_SERVICE_NODE_FLAGS, "-e", ""], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });
});
