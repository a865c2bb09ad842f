// Build the two modules the server serves with esbuild (single ES module files, readable,
// no runtime dependency but `react` for the hooks), committed in src/tickwire/static/:
//   tickwire.js        <- src/index.js
//   tickwire-react.js  <- src/react/index.js (imports `react` and `./tickwire.js`)
// A bundler consumes src/ and types/ directly (package.json `exports`); no build needed.
//   node scripts/build.mjs          refresh src/tickwire/static/
//   node scripts/build.mjs --check  fail when src/tickwire/static/ differs from a fresh build

import { build } from "esbuild";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const staticDir = resolve(root, "../src/tickwire/static");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const OUTPUTS = ["tickwire.js", "tickwire-react.js"];

/** The hooks module imports the core as ./tickwire.js (one copy of the client per page). */
const coreAsSibling = {
  name: "core-as-sibling",
  setup(b) {
    b.onResolve({ filter: /^\.\.\/index\.js$/ }, () => ({ path: "./tickwire.js", external: true }));
  },
};

async function bundle(entry, name, extra = {}) {
  const result = await build({
    entryPoints: [join(root, entry)],
    bundle: true,
    format: "esm",
    target: "es2020",
    platform: "browser",
    write: false,
    legalComments: "inline",
    charset: "utf8",
    banner: { js: `// ${name} ${pkg.version} - tickwire browser SDK (MIT). Built from js/${entry}; do not edit.` },
    logLevel: "error",
    ...extra,
  });
  return result.outputFiles[0].text;
}

async function buildAll() {
  return {
    "tickwire.js": await bundle("src/index.js", "tickwire.js"),
    "tickwire-react.js": await bundle("src/react/index.js", "tickwire-react.js", { external: ["react"], plugins: [coreAsSibling] }),
  };
}

const built = await buildAll();
if (process.argv.includes("--check")) {
  const stale = OUTPUTS.filter((name) => {
    const path = join(staticDir, name);
    return !existsSync(path) || readFileSync(path, "utf8") !== built[name];
  });
  if (stale.length) {
    console.error(
      `tickwire: the committed browser build is out of date: ${stale.map((n) => `src/tickwire/static/${n}`).join(", ")}\n` +
        "  differs from a fresh build of js/src. Run `make js-build` (or `cd js && npm run build`) and commit the result.",
    );
    process.exit(1);
  }
  console.log(`tickwire: src/tickwire/static/ matches a fresh build (${OUTPUTS.join(", ")})`);
} else {
  mkdirSync(staticDir, { recursive: true });
  for (const name of OUTPUTS) writeFileSync(join(staticDir, name), built[name]);
  console.log(`tickwire: built ${OUTPUTS.map((n) => `${n} (${built[n].length} bytes)`).join(", ")}`);
}
