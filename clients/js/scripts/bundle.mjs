#!/usr/bin/env node
// Bundles @librarian/client into the one file the server embeds and serves as /librarian.js
// (crates/librarian-server/web/librarian.js), so that `cargo build` needs no Node. The file is
// committed; CI rebuilds it and fails if it differs.
//
//   node scripts/bundle.mjs           # write it
//   node scripts/bundle.mjs --check   # write nothing; exit 1 if the committed file differs
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build, version } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const entry = join(here, "../packages/client/src/index.ts");
const out = resolve(here, "../../../crates/librarian-server/web/librarian.js");

const banner =
  "// librarian.js: @librarian/client (clients/js/packages/client), bundled for the page the server\n" +
  `// embeds. Built by \`npm run bundle\` in clients/js (scripts/bundle.mjs, esbuild ${version}):\n` +
  "// do not edit; change the TypeScript sources and rebuild. CI fails when this file differs.\n";

const result = await build({
  entryPoints: [entry],
  bundle: true,
  format: "esm",
  target: "es2020",
  platform: "browser",
  charset: "utf8",
  legalComments: "none",
  banner: { js: banner },
  write: false,
});
const text = result.outputFiles[0].text;

if (process.argv.includes("--check")) {
  let committed = null;
  try {
    committed = readFileSync(out, "utf8");
  } catch {}
  if (committed !== text) {
    console.error(`${out} differs from a fresh build of @librarian/client: run \`npm run bundle\` in clients/js and commit it.`);
    process.exit(1);
  }
  console.log("the embedded librarian.js matches a fresh build");
} else {
  writeFileSync(out, text);
  console.log(`wrote ${out} (${text.length} bytes)`);
}
