import { SwitchyardError } from "@switchyard/errors";
import { BUNDLED_MODEL_DIR } from "@switchyard/model";
import { parseFlags } from "./args";
import { GENERATE_HELP, runGenerate } from "./commands/generate";
import { QUALITY_HELP, runQuality } from "./commands/quality";
import { UP_HELP, runUp } from "./commands/up";

const HELP = `switchyard — serving runtime for MoE flow-matching transformers

Commands:
  up         bring up a local cluster (gateway, scheduler, workers) serving the model
  generate   generate images (in-process, or from a cluster with --server) and write a PNG grid
  quality    sample-quality figures (classifier accuracy, Fréchet distance)

Run 'switchyard <command> --help' for a command's options.
Environment: SWITCHYARD_MODEL_DIR overrides the default model directory.`;

const COMMANDS: Record<string, { help: string; run: (flags: Record<string, unknown>, modelDir: string) => Promise<void> }> = {
  generate: { help: GENERATE_HELP, run: runGenerate },
  quality: { help: QUALITY_HELP, run: runQuality },
  up: { help: UP_HELP, run: runUp },
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
  const { flags } = parseFlags(rest);
  if (flags.help || flags.h) {
    console.log(c.help);
    return 0;
  }
  const modelDir = (typeof flags.model === "string" ? flags.model : undefined) ?? process.env.SWITCHYARD_MODEL_DIR ?? BUNDLED_MODEL_DIR;
  try {
    await c.run(flags, modelDir);
    return 0;
  } catch (e) {
    const err = SwitchyardError.from(e);
    console.error(`switchyard ${cmd}: ${err.message}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
