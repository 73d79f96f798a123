#!/usr/bin/env node
// Copies the pinned browser code into the console's Python package, where it is committed so that wheels and
// images carry it without Node: node_modules/htmx.org/dist/htmx.min.js → src/prizeflow_console/static/vendor/.
//   node build.mjs          write the copies
//   node build.mjs --check  exit 1 when a committed copy differs from the pinned package (make lint)
// Run `npm ci` here first (`make console-assets-deps`).
import { copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..", "..");
const vendor = join(here, "..", "src", "prizeflow_console", "static", "vendor");
const ASSETS = [[join(here, "node_modules", "htmx.org", "dist", "htmx.min.js"), join(vendor, "htmx.min.js")]];

const args = process.argv.slice(2);
const unknown = args.filter((a) => a !== "--check");
if (unknown.length) {
  console.error(`build.mjs: unknown argument(s) ${unknown.join(" ")} (usage: node build.mjs [--check])`);
  process.exit(2);
}
const check = args.includes("--check");
const shown = (path) => relative(repo, path);

let stale = 0;
for (const [source, target] of ASSETS) {
  if (!existsSync(source)) {
    console.error(`build.mjs: ${shown(source)} is missing: run \`make console-assets-deps\` (npm ci) first`);
    process.exit(2);
  }
  const same = existsSync(target) && readFileSync(source).equals(readFileSync(target));
  if (check) {
    if (!same) {
      const what = existsSync(target) ? `differs from ${shown(source)}` : "is missing";
      console.error(`${shown(target)} ${what}: run \`node ${shown(join(here, "build.mjs"))}\``);
      stale += 1;
    }
  } else if (!same) {
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(source, target);
    console.log(`wrote ${shown(target)}`);
  }
}
if (check && !stale) {
  console.log(`console assets: ${ASSETS.length} vendored file(s) match the pinned packages`);
}
process.exit(stale ? 1 : 0);
