/**
 * The folders of src/ import each other in the order the README's "Layers"
 * block gives, bottom to top: a folder imports only from folders below it
 * (type imports count too). The imports that still point up are listed
 * below, file by file, until they are taken out; a new one fails, and so
 * does a listed one that is gone (take it off the list).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** Upward imports not yet taken out: `file -> folder`. */
const KNOWN: string[] = [];

function layers(): string[][] {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const m = /<!-- layers -->\n```\n([\s\S]*?)```/.exec(readme);
  if (!m) throw new Error('README.md has no layers block');
  return m[1]!
    .trim()
    .split('\n')
    .reverse() // the README lists them top first
    .map((line) => line.split('#')[0]!.trim().split(/\s+/).filter(Boolean));
}

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

function folderOf(file: string): string | undefined {
  const parts = path.relative(path.join(ROOT, 'src'), file).split(path.sep);
  return parts.length > 1 ? parts[0] : undefined;
}

function upwardImports(level: Map<string, number>): string[] {
  const found = new Set<string>();
  for (const file of sources(path.join(ROOT, 'src'))) {
    const from = folderOf(file);
    if (from === undefined) continue; // src/index.ts and src/version.ts sit above and below everything
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/g)) {
      const to = folderOf(path.resolve(path.dirname(file), m[1]!));
      if (to === undefined || to === from) continue;
      if ((level.get(to) ?? Infinity) >= (level.get(from) ?? Infinity)) found.add(`${path.relative(ROOT, file)} -> ${to}`);
    }
  }
  return [...found].sort();
}

describe('the layers of src/', () => {
  it('the README names every folder once', () => {
    const named = layers().flat();
    const folders = fs
      .readdirSync(path.join(ROOT, 'src'), { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
    expect([...named].sort()).toEqual([...folders].sort());
  });

  it('folders import only from folders below them, apart from the listed ones', () => {
    const level = new Map<string, number>();
    layers().forEach((folders, i) => {
      for (const f of folders) level.set(f, i);
    });
    expect(upwardImports(level)).toEqual([...KNOWN].sort());
  });
});
