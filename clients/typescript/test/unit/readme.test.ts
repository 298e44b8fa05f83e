/**
 * The README's TypeScript is the code in examples/: each ```ts block is marked with the file it
 * shows and is that file's text, so what the README shows is what tsc compiles and
 * test/integration/readme.test.ts runs. A block that cannot run here says why ("not run: …").
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { PACKAGE_ROOT } from "../helpers.js";

export interface Block {
  marker: string | undefined;
  code: string;
}

export function readmeBlocks(): Block[] {
  const readme = readFileSync(join(PACKAGE_ROOT, "README.md"), "utf8");
  const found = readme.matchAll(/(?:<!-- ((?:example|not run): [^\n]*?) -->\n)?```ts\n([\s\S]*?)\n```/g);
  return [...found].map((match) => ({ marker: match[1], code: match[2]! }));
}

test("every ts block in the README is an example file, verbatim, or says why it is not run", () => {
  const blocks = readmeBlocks();
  assert.ok(blocks.length >= 6);
  for (const block of blocks) {
    assert.ok(block.marker, `a ts block without a marker:\n${block.code}`);
    const file = /^example: (examples\/[\w-]+\.ts)$/.exec(block.marker)?.[1];
    if (file === undefined) {
      assert.match(block.marker, /^not run: .{20,}/, "a reason");
      continue;
    }
    assert.equal(block.code, readFileSync(join(PACKAGE_ROOT, file), "utf8").replace(/\n$/, ""), `${file} differs`);
  }
  const unrun = blocks.filter((block) => block.marker?.startsWith("not run"));
  assert.equal(unrun.length, 1, "only the Express route goes unrun");
});

test("every file in examples/ is in the README", () => {
  const shown = readmeBlocks().map((block) => block.marker);
  for (const name of readdirSync(join(PACKAGE_ROOT, "examples")).filter((n) => n.endsWith(".ts"))) {
    assert.ok(shown.includes(`example: examples/${name}`), `examples/${name} is not in the README`);
  }
});
