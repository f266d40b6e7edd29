import * as fs from 'node:fs';
import { parseDocument } from 'yaml';
import { type Scenario, ScenarioError, validateScenario } from './schema.js';

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
  return doc.toJS();
}
