#!/usr/bin/env node
// Parse AsyncAPI documents with the official parser (@asyncapi/parser) and print its diagnostics as JSON.
//
//   node validate.mjs [--fail-on=error|warning|information|hint] FILE...
//
// Prints one JSON object to stdout: {parser, files: [{file, counts, diagnostics}]}. Exit status: 0 when no
// diagnostic is at or above the --fail-on severity (default: error), 1 when one is, 2 on bad usage, an
// unreadable file or a parser crash. Run by libs/contracts/tests/test_asyncapi_parser.py and `make lint`.

import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import process from "node:process";

import { DiagnosticSeverity, Parser } from "@asyncapi/parser";

const SEVERITIES = ["error", "warning", "information", "hint"]; // index = DiagnosticSeverity value

function usage(message) {
  process.stderr.write(`${message}\nusage: node validate.mjs [--fail-on=${SEVERITIES.join("|")}] FILE...\n`);
  process.exit(2);
}

function parseArgs(argv) {
  let failOn = DiagnosticSeverity.Error;
  const files = [];
  for (const arg of argv) {
    if (arg.startsWith("--fail-on=")) {
      const level = SEVERITIES.indexOf(arg.slice("--fail-on=".length));
      if (level < 0) usage(`unknown severity in ${arg}`);
      failOn = level;
    } else if (arg.startsWith("-")) {
      usage(`unknown option ${arg}`);
    } else {
      files.push(arg);
    }
  }
  if (files.length === 0) usage("no file given");
  return { failOn, files };
}

function plain(diagnostic) {
  const start = diagnostic.range?.start;
  return {
    severity: SEVERITIES[diagnostic.severity] ?? String(diagnostic.severity),
    code: String(diagnostic.code),
    message: diagnostic.message,
    path: diagnostic.path.map(String),
    // 1-based, like an editor shows it
    line: start === undefined ? null : start.line + 1,
    column: start === undefined ? null : start.character + 1,
  };
}

async function validate(parser, file) {
  let text;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    process.stderr.write(`cannot read ${file}: ${error.message}\n`);
    process.exit(2);
  }
  let diagnostics;
  try {
    ({ diagnostics } = await parser.parse(text, { source: path.resolve(file) }));
  } catch (error) {
    process.stderr.write(`the parser failed on ${file}: ${error.stack ?? error}\n`);
    process.exit(2);
  }
  const counts = Object.fromEntries(SEVERITIES.map((name) => [name, 0]));
  for (const diagnostic of diagnostics) counts[SEVERITIES[diagnostic.severity]] += 1;
  const ordered = diagnostics
    .map(plain)
    .sort((a, b) => SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity) || (a.line ?? 0) - (b.line ?? 0));
  return { file, counts, diagnostics: ordered, worst: Math.min(...diagnostics.map((d) => d.severity)) };
}

const { failOn, files } = parseArgs(process.argv.slice(2));
const version = createRequire(import.meta.url)("@asyncapi/parser/package.json").version;
const parser = new Parser();
const results = [];
for (const file of files) results.push(await validate(parser, file));
const failed = results.some((result) => result.worst <= failOn);
process.stdout.write(
  `${JSON.stringify({ parser: `@asyncapi/parser@${version}`, files: results.map(({ worst, ...rest }) => rest) }, null, 2)}\n`,
);
process.exit(failed ? 1 : 0);
