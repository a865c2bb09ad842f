// The published .d.ts files declare exactly what the modules export.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

function declared(file) {
  const text = readFileSync(new URL(`../../types/${file}`, import.meta.url), "utf8");
  return [...text.matchAll(/^export declare (?:const|function|class) (\w+)/gm)].map((m) => m[1]).filter((n, i, a) => a.indexOf(n) === i).sort();
}

test("tickwire.d.ts matches src/index.js", async () => {
  const mod = await import("../../src/index.js");
  assert.deepEqual(Object.keys(mod).sort(), declared("tickwire.d.ts"));
});

test("tickwire-react.d.ts matches src/react/index.js", async () => {
  const mod = await import("../../src/react/index.js");
  assert.deepEqual(Object.keys(mod).sort(), declared("tickwire-react.d.ts"));
});
