// A JSON reader that fails the way Go's encoding/json Decoder does, because etcd's gateway
// answers malformed bodies with Go's error text verbatim ("invalid character 'b' looking for
// beginning of object key string", "unexpected EOF"). It reads one value from the front of
// a text and reports where it ended, as json.Decoder does (anything after the first value is
// left for the next read). Numbers keep their text, so 64-bit integers lose no precision.

export class GoJsonError extends Error {}

/** A JSON number as written. */
export class JsonNumber {
  constructor(readonly text: string) {}
}

export type JsonValue = string | boolean | null | JsonNumber | JsonValue[] | Map<string, JsonValue>;

/** Go's quoteChar: how a byte is shown in a syntax error. */
function quoteChar(c: string): string {
  if (c === "'") return `'\\''`;
  if (c === '"') return `'"'`;
  const quoted = JSON.stringify(c);
  return `'${quoted.slice(1, -1)}'`;
}

const WHITESPACE = new Set([' ', '\t', '\n', '\r']);

class Reader {
  pos = 0;
  constructor(readonly text: string) {}

  skipSpace(): void {
    while (this.pos < this.text.length && WHITESPACE.has(this.text[this.pos]!)) this.pos++;
  }

  /** The next non-space character; running out of input mid-value is Go's "unexpected EOF". */
  peek(): string {
    this.skipSpace();
    const c = this.text[this.pos];
    if (c === undefined) throw new GoJsonError('unexpected EOF');
    return c;
  }

  fail(c: string, context: string): never {
    throw new GoJsonError(`invalid character ${quoteChar(c)} ${context}`);
  }
}

function readValue(r: Reader): JsonValue {
  const c = r.peek();
  if (c === '{') return readObject(r);
  if (c === '[') return readArray(r);
  if (c === '"') return readString(r);
  if (c === '-' || (c >= '0' && c <= '9')) return readNumber(r);
  for (const [word, value] of [
    ['true', true],
    ['false', false],
    ['null', null],
  ] as const) {
    if (c === word[0]) return readLiteral(r, word, value);
  }
  return r.fail(c, 'looking for beginning of value');
}

function readLiteral<T>(r: Reader, word: string, value: T): T {
  for (let i = 0; i < word.length; i++) {
    const c = r.text[r.pos + i];
    if (c === undefined) throw new GoJsonError('unexpected EOF');
    if (c !== word[i]) r.fail(c, `in literal ${word} (expecting ${quoteChar(word[i]!)})`);
  }
  r.pos += word.length;
  return value;
}

function readNumber(r: Reader): JsonNumber {
  const match = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(r.text.slice(r.pos));
  if (match === null || match[0] === '-') {
    const c = r.text[r.pos + 1];
    if (c === undefined) throw new GoJsonError('unexpected EOF');
    return r.fail(c, 'in numeric literal');
  }
  r.pos += match[0].length;
  return new JsonNumber(match[0]);
}

function readString(r: Reader): string {
  const start = r.pos;
  r.pos++;
  for (;;) {
    const c = r.text[r.pos];
    if (c === undefined) throw new GoJsonError('unexpected EOF');
    if (c === '"') break;
    if (c < ' ') r.fail(c, 'in string literal');
    if (c === '\\') {
      const e = r.text[r.pos + 1];
      if (e === undefined) throw new GoJsonError('unexpected EOF');
      if (!'"\\/bfnrtu'.includes(e)) r.fail(e, 'in string escape code');
      r.pos++;
    }
    r.pos++;
  }
  r.pos++;
  return JSON.parse(r.text.slice(start, r.pos)) as string;
}

function readObject(r: Reader): Map<string, JsonValue> {
  const out = new Map<string, JsonValue>();
  r.pos++;
  if (r.peek() === '}') {
    r.pos++;
    return out;
  }
  for (;;) {
    const k = r.peek();
    if (k !== '"') r.fail(k, 'looking for beginning of object key string');
    const key = readString(r);
    const colon = r.peek();
    if (colon !== ':') r.fail(colon, 'after object key');
    r.pos++;
    out.set(key, readValue(r));
    const next = r.peek();
    r.pos++;
    if (next === '}') return out;
    if (next !== ',') r.fail(next, 'after object key:value pair');
  }
}

function readArray(r: Reader): JsonValue[] {
  const out: JsonValue[] = [];
  r.pos++;
  if (r.peek() === ']') {
    r.pos++;
    return out;
  }
  for (;;) {
    out.push(readValue(r));
    const next = r.peek();
    r.pos++;
    if (next === ']') return out;
    if (next !== ',') r.fail(next, 'after array element');
  }
}

/**
 * Reads the first JSON value of `text` starting at `from`: the value and where it ended, or
 * undefined when only whitespace is left (Go's io.EOF). Throws GoJsonError with Go's text.
 */
export function readJsonValue(text: string, from = 0): { value: JsonValue; end: number } | undefined {
  const r = new Reader(text);
  r.pos = from;
  r.skipSpace();
  if (r.pos >= text.length) return undefined;
  const value = readValue(r);
  return { value, end: r.pos };
}

/** Go's word for a JSON value's kind in "cannot unmarshal <kind> into Go value of type ...". */
export function goKind(value: JsonValue): string {
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'bool';
  if (value instanceof JsonNumber) return 'number';
  if (Array.isArray(value)) return 'array';
  return value === null ? 'null' : 'object';
}

/** Go's JSON string: JSON.stringify's, plus the HTML-safe escapes Go's encoder applies. */
export function goString(text: string): string {
  return JSON.stringify(text).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
