import { SwitchyardError } from "@switchyard/errors";
import { BUNDLED_MODEL_DIR } from "@switchyard/model";
import { parseFlags } from "./args";
import { GENERATE_HELP, runGenerate } from "./commands/generate";
import { QUALITY_HELP, runQuality } from "./commands/quality";
import { UP_HELP, runUp } from "./commands/up";
import { PLACEMENT_HELP, TRACE_HELP, runPlacement, runTrace } from "./commands/placement";
import { loadManifest } from "@switchyard/manifest";
import { CACHE_HELP, runCache } from "./commands/cache";
import { NATS_CONFIG_HELP, runNatsConfig } from "./commands/nats-config";
import { LOADTEST_HELP, runLoadtestCommand } from "@switchyard/loadtest";

const HELP = `switchyard — serving runtime for MoE flow-matching transformers

Commands:
  up         bring up a local cluster (gateway, scheduler, workers) serving the model
  generate   generate images (in-process, or from a cluster with --server) and write a PNG grid
  quality    sample-quality figures (classifier accuracy, Fréchet distance)
  trace      routing-trace statistics and export
  placement  solve, simulate, diff, apply, status and roll back expert placements
  cache      expert-cache figures of a running cluster's workers
  nats-config  a NATS authorization block with a user per role, for a cluster's NATS
  loadtest   open- and closed-loop loads, sweeps and SLO search against a cluster; compare runs

Run 'switchyard <command> --help' for a command's options.
Environment: SWITCHYARD_MODEL_DIR overrides the default model directory.`;

const COMMANDS: Record<string, { help: string; run: (flags: Record<string, unknown>, modelDir: string, positionals: string[]) => Promise<void> }> = {
  trace: { help: TRACE_HELP, run: (f, m, p) => runTrace(f, p, () => loadManifest(m).name) },
  placement: { help: PLACEMENT_HELP, run: (f, m, p) => runPlacement(f, p, () => loadManifest(m).name) },
  generate: { help: GENERATE_HELP, run: runGenerate },
  quality: { help: QUALITY_HELP, run: runQuality },
  up: { help: UP_HELP, run: runUp },
  cache: { help: CACHE_HELP, run: (f, _m, p) => runCache(f, p) },
  "nats-config": { help: NATS_CONFIG_HELP, run: (f) => runNatsConfig(f) },
  loadtest: { help: LOADTEST_HELP, run: (f, _m, p) => runLoadtestCommand(f, p) },
};

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === "--help" || cmd === "-h" || cmd === "help") {
    console.log(HELP);
    return 0;
  }
  const c = COMMANDS[cmd];
  if (!c) {
    console.error(`unknown command ${JSON.stringify(cmd)}; commands: ${Object.keys(COMMANDS).join(", ")}`);
    return 2;
  }
  const { flags, positionals } = parseFlags(rest);
  if (flags.help || flags.h) {
    console.log(c.help);
    return 0;
  }
  const modelDir = (typeof flags.model === "string" ? flags.model : undefined) ?? process.env.SWITCHYARD_MODEL_DIR ?? BUNDLED_MODEL_DIR;
  try {
    await c.run(flags, modelDir, positionals);
    return 0;
  } catch (e) {
    const err = SwitchyardError.from(e);
    console.error(`switchyard ${cmd}: ${err.message}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
