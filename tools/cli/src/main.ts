import { parseArgs } from "node:util";
import { SwitchyardError } from "@switchyard/errors";
import { BUNDLED_MODEL_DIR } from "@switchyard/model";
import { GENERATE_HELP, runGenerate } from "./commands/generate";
import { QUALITY_HELP, runQuality } from "./commands/quality";

const HELP = `switchyard — serving runtime for MoE flow-matching transformers

Commands:
  generate   generate images and write a PNG grid
  quality    sample-quality figures (classifier accuracy, Fréchet distance)

Run 'switchyard <command> --help' for a command's options.
Environment: SWITCHYARD_MODEL_DIR overrides the default model directory.`;

const COMMANDS: Record<string, { help: string; run: (flags: Record<string, unknown>, modelDir: string) => Promise<void> }> = {
  generate: { help: GENERATE_HELP, run: runGenerate },
  quality: { help: QUALITY_HELP, run: runQuality },
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
  let flags: Record<string, unknown>;
  try {
    flags = parseArgs({ args: rest, strict: false, allowPositionals: true }).values;
  } catch (e) {
    console.error(String(e));
    return 2;
  }
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
