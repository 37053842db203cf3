import nx from "@nx/eslint-plugin";
import tseslint from "typescript-eslint";

export default [
  { ignores: ["**/node_modules/**", "tmp/**", "**/dist/**", "**/build/**", "models/**", "tools/model-zoo/**", "**/*.js", "**/*.cjs"] },
  ...nx.configs["flat/base"],
  ...nx.configs["flat/typescript"],
  {
    files: ["**/*.ts"],
    languageOptions: { parser: tseslint.parser },
    rules: {
      "@nx/enforce-module-boundaries": [
        "error",
        {
          enforceBuildableLibDependency: false,
          allow: [],
          banTransitiveDependencies: false,
          depConstraints: [
            // Deployables and tools sit on libraries; nothing depends on them.
            { sourceTag: "type:service", onlyDependOnLibsWithTags: ["type:lib", "type:util", "type:contract"] },
            { sourceTag: "type:tool", onlyDependOnLibsWithTags: ["type:lib", "type:util", "type:contract"] },
            { sourceTag: "type:lib", onlyDependOnLibsWithTags: ["type:lib", "type:util", "type:contract"] },
            { sourceTag: "type:contract", onlyDependOnLibsWithTags: ["type:util", "type:contract"] },
            { sourceTag: "type:util", onlyDependOnLibsWithTags: ["type:util"] },
            // Gateway, scheduler and worker are peers on the contract library (@switchyard/contract):
            // no role's library stands on another's.
            { sourceTag: "role:gateway", notDependOnLibsWithTags: ["role:scheduler", "role:worker"] },
            { sourceTag: "role:scheduler", notDependOnLibsWithTags: ["role:gateway", "role:worker"] },
            { sourceTag: "role:worker", notDependOnLibsWithTags: ["role:gateway", "role:scheduler"] },
            // The ONNX runtime stays out of the control plane (gateway, scheduler, bus, sdk).
            {
              sourceTag: "scope:control",
              notDependOnLibsWithTags: ["scope:compute"],
              bannedExternalImports: ["onnxruntime-node", "onnxruntime-common"],
            },
            {
              sourceTag: "scope:shared",
              notDependOnLibsWithTags: ["scope:compute", "scope:control"],
              bannedExternalImports: ["onnxruntime-node", "onnxruntime-common"],
            },
          ],
        },
      ],
      "@typescript-eslint/no-non-null-assertion": "off",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/consistent-type-imports": "error",
    },
  },
];
