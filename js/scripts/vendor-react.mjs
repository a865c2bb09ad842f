// For the browser tests only: React and ReactDOM's client as one ES module (build/react.js),
// which a test page maps `react` to with an import map. Never shipped.

import { build } from "esbuild";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const names = Object.keys(require("react")).filter((n) => /^[A-Za-z_$][\w$]*$/.test(n) && n !== "default");
const contents = [
  'import React from "react";',
  'import ReactDOMClient from "react-dom/client";',
  "export default React;",
  `export const { ${names.join(", ")} } = React;`,
  "export const { createRoot, hydrateRoot } = ReactDOMClient;",
].join("\n");

await build({
  stdin: { contents, resolveDir: root, loader: "js" },
  bundle: true,
  format: "esm",
  target: "es2020",
  outfile: join(root, "build", "react.js"),
  define: { "process.env.NODE_ENV": '"production"' },
  logLevel: "error",
});
console.log("tickwire: build/react.js (React for the browser tests)");
