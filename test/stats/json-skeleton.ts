/**
 * Parse JSON text into its shape: key order kept, and numbers typed by how
 * they are written ("3" is an int, "3.000000" a float), which JSON.parse
 * forgets.
 */
export type Skel = 'int' | 'float' | 'string' | 'bool' | 'null' | { object: [string, Skel][] } | { array: Skel[] };

export function skeleton(text: string): Skel {
  let i = 0;
  const ws = () => {
    while (i < text.length && /\s/.test(text[i])) i++;
  };
  const fail = (what: string): never => {
    throw new Error(`json-skeleton: ${what} at offset ${i}`);
  };
  const str = (): string => {
    const start = i;
    i++;
    while (text[i] !== '"') {
      if (i >= text.length) fail('unterminated string');
      i += text[i] === '\\' ? 2 : 1;
    }
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (): Skel => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const members: [string, Skel][] = [];
      ws();
      if (text[i] === '}') {
        i++;
        return { object: members };
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const k = str();
        ws();
        if (text[i++] !== ':') fail('expected ":"');
        members.push([k, value()]);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i++] !== '}') fail('expected "}"');
        return { object: members };
      }
    }
    if (c === '[') {
      i++;
      const items: Skel[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return { array: items };
      }
      for (;;) {
        items.push(value());
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i++] !== ']') fail('expected "]"');
        return { array: items };
      }
    }
    if (c === '"') {
      str();
      return 'string';
    }
    const m = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 64));
    if (m) {
      i += m[0].length;
      return m[1] || m[2] ? 'float' : 'int';
    }
    for (const [lit, t] of [
      ['true', 'bool'],
      ['false', 'bool'],
      ['null', 'null'],
    ] as const) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return t;
      }
    }
    return fail('unexpected character');
  };
  const v = value();
  ws();
  if (i !== text.length) fail('trailing text');
  return v;
}

/** Member `key` of an object skeleton. */
export function member(s: Skel, key: string): Skel {
  if (typeof s !== 'object' || !('object' in s)) throw new Error(`not an object (looking for ${key})`);
  const m = s.object.find(([k]) => k === key);
  if (!m) throw new Error(`no key ${key}`);
  return m[1];
}

export function keys(s: Skel): string[] {
  if (typeof s !== 'object' || !('object' in s)) throw new Error('not an object');
  return s.object.map(([k]) => k);
}
