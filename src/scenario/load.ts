import * as fs from 'node:fs';
import { parseDocument } from 'yaml';
import { type Scenario, ScenarioError, validateScenario } from './schema.js';

/**
 * Bound on YAML alias expansion (the yaml package's maxAliasCount: an
 * anchor's uses times the aliases inside it): a scenario needs few, and a
 * small file of nested aliases (a "billion laughs") would otherwise expand
 * beyond memory.
 */
export const MAX_YAML_ALIASES = 100;

/** Reads a scenario file (.json, .yaml or .yml) and validates it. */
export function loadScenario(file: string): Scenario {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ScenarioError(`${file}: cannot read the scenario (${code === 'ENOENT' ? 'no such file' : (code ?? (err as Error).message)})`);
  }
  return validateScenario(parseScenarioText(text, file), file);
}

export function parseScenarioText(text: string, file: string): unknown {
  if (/\.json$/i.test(file)) {
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new ScenarioError(`${file}: not valid JSON: ${(err as Error).message}`);
    }
  }
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const line = e.linePos?.[0]?.line;
    throw new ScenarioError(`${file}${line ? `:${line}` : ''}: not valid YAML: ${e.message.split('\n')[0]}`);
  }
  try {
    return doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (err) {
    // the yaml package's guard against alias bombs (billion laughs), and any other resolution failure
    const why = /Excessive alias count/.test((err as Error).message)
      ? `its aliases expand too far (an anchor's uses times the aliases inside it may be at most ${MAX_YAML_ALIASES}; an alias bomb?)`
      : (err as Error).message.split('\n')[0];
    throw new ScenarioError(`${file}: not a usable YAML scenario: ${why}`);
  }
}
