// A JSON reader that keeps every number as its source text. JSON.parse turns the line-protocol
// corpus's 64-bit integers and nanosecond times into doubles, which round them (Node 20 has no
// reviver `context.source`); the caller decides per field whether a number is a float, an int64 or a time.

/** A JSON number as written in the source. */
export class JsonNumber {
  constructor(readonly text: string) {}
  toBigInt(): bigint {
    return BigInt(this.text);
  }
  toNumber(): number {
    return Number(this.text);
  }
}

export type ExactJson = null | boolean | string | JsonNumber | ExactJson[] | { [key: string]: ExactJson };

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

export function parseExactJson(source: string): ExactJson {
  let i = 0;
  const fail = (what: string): never => {
    throw new SyntaxError(`${what} at offset ${i}`);
  };
  const skip = (): void => {
    while (i < source.length) {
      const c = source.charCodeAt(i);
      if (c !== 32 && c !== 10 && c !== 13 && c !== 9) return;
      i++;
    }
  };
  const string = (): string => {
    // The string token, escapes included, is itself valid JSON: JSON.parse decodes it exactly.
    const start = i++;
    for (;;) {
      if (i >= source.length) fail('unterminated string');
      const c = source.charCodeAt(i);
      if (c === 92) i += 2;
      else if (c === 34) break;
      else i++;
    }
    i++;
    return JSON.parse(source.slice(start, i)) as string;
  };
  const value = (): ExactJson => {
    skip();
    const c = source[i];
    if (c === '{') {
      i++;
      const out: { [key: string]: ExactJson } = {};
      skip();
      if (source[i] === '}') {
        i++;
        return out;
      }
      for (;;) {
        skip();
        if (source[i] !== '"') fail('expected a key');
        const key = string();
        skip();
        if (source[i++] !== ':') fail("expected ':'");
        Object.defineProperty(out, key, { value: value(), enumerable: true, writable: true, configurable: true });
        skip();
        const d = source[i++];
        if (d === '}') return out;
        if (d !== ',') fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      const out: ExactJson[] = [];
      skip();
      if (source[i] === ']') {
        i++;
        return out;
      }
      for (;;) {
        out.push(value());
        skip();
        const d = source[i++];
        if (d === ']') return out;
        if (d !== ',') fail("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    if (source.startsWith('true', i)) return (i += 4), true;
    if (source.startsWith('false', i)) return (i += 5), false;
    if (source.startsWith('null', i)) return (i += 4), null;
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(source);
    if (m === null) return fail('unexpected character');
    i += m[0].length;
    return new JsonNumber(m[0]);
  };
  const out = value();
  skip();
  if (i !== source.length) fail('trailing text');
  return out;
}
