// The generated proxies of the conformance and chat hubs under the TypeScript
// compiler: a file that uses every generated call compiles with --strict; a file
// of deliberate mistakes fails with exactly the errors it marks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { ROOT } from './harness.mjs';

const TSC = path.join(ROOT, 'node_modules', '.bin', 'tsc');
const DIR = path.join(ROOT, 'tests', 'ts');

function tsc(project) {
  assert.ok(existsSync(TSC), `${TSC} is missing: run \`npm ci\` in ${ROOT}`);
  const result = spawnSync(TSC, ['-p', path.join(DIR, project), '--pretty', 'false'], { cwd: ROOT, encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

test('every generated call, used with the right types, compiles under --strict', () => {
  const { status, output } = tsc('tsconfig.json');
  assert.equal(status, 0, output);
});

test('deliberate mistakes fail with exactly the marked errors', () => {
  const { status, output } = tsc('tsconfig.mistakes.json');
  assert.notEqual(status, 0, 'the mistakes compiled');
  const expected = readFileSync(path.join(DIR, 'mistakes.ts'), 'utf8')
    .split('\n')
    .flatMap((line, index) => {
      const marker = line.match(/\/\/ expect (TS\d+)/);
      return marker ? [`${index + 1} ${marker[1]}`] : [];
    });
  const actual = [...output.matchAll(/mistakes\.ts\((\d+),\d+\): error (TS\d+)/g)].map(([, line, code]) => `${line} ${code}`);
  assert.deepEqual(actual.sort(), expected.sort(), output);
  // Nothing outside the mistakes file failed.
  assert.deepEqual(output.split('\n').filter((l) => l.includes('error TS') && !l.includes('mistakes.ts')), []);
});
