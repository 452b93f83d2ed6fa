// Builds main.js + index.html with each bundler into dist/<bundler>/, each with its plainest
// setup and no option about herenow (no loader, plugin or asset rule for wasm): what the
// package must survive unchanged. rollup gets @rollup/plugin-node-resolve only, which every
// rollup app needs to import anything from node_modules.
//
//   node build.mjs [esbuild|webpack|rollup …]   (default: all three)
import { build as esbuild } from "esbuild";
import webpack from "webpack";
import { rollup } from "rollup";
import { nodeResolve } from "@rollup/plugin-node-resolve";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const ENTRY = join(HERE, "main.js");

const bundlers = {
  async esbuild(out) {
    await esbuild({ entryPoints: [ENTRY], bundle: true, format: "esm", minify: true, outfile: join(out, "main.js"), logLevel: "warning" });
  },
  async webpack(out) {
    const stats = await new Promise((resolve, reject) => {
      webpack({ mode: "production", context: HERE, entry: ENTRY, output: { path: out, filename: "main.js" } }, (err, s) =>
        err ? reject(err) : resolve(s));
    });
    if (stats.hasErrors() || stats.hasWarnings()) {
      throw new Error(stats.toString({ all: false, errors: true, warnings: true }));
    }
  },
  async rollup(out) {
    const warnings = [];
    const bundle = await rollup({ input: ENTRY, plugins: [nodeResolve({ browser: true })], onwarn: (w) => warnings.push(String(w)) });
    await bundle.write({ file: join(out, "main.js"), format: "es" });
    await bundle.close();
    if (warnings.length) throw new Error(`rollup warned:\n${warnings.join("\n")}`);
  },
};

const names = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(bundlers);
for (const name of names) {
  if (!bundlers[name]) throw new Error(`unknown bundler ${name}`);
  const out = join(HERE, "dist", name);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  await bundlers[name](out);
  copyFileSync(join(HERE, "index.html"), join(out, "index.html"));
  console.log(`built dist/${name}`);
}
