// Unit tests for the value parsers: what each type accepts, what it rejects, and the wording
// of the "expected X, got Y" problem that ends up in the operator's error message.

import { describe, expect, it } from 'vitest';
import {
  formatDurationMs,
  isSecureScheme,
  parseBool,
  parseDurationMs,
  parseId,
  parseInitialCluster,
  parseInteger,
  parsePeer,
  parseSizeBytes,
  parseStringList,
  parseUrl,
  unixSocketPath,
  ValueProblem,
} from './values.js';

describe('durations', () => {
  it.each([
    ['30s', 30_000],
    ['100ms', 100],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1h30m', 5_400_000],
    ['2h0m0s', 7_200_000], // as Go prints durations
    ['1.5s', 1500],
    ['0', 0],
    ['250', 250], // a plain integer is milliseconds
  ])('parses %s as %d ms', (text, ms) => {
    expect(parseDurationMs(text, true)).toBe(ms);
  });

  it('takes YAML integers as milliseconds', () => {
    expect(parseDurationMs(1500n, false)).toBe(1500);
    expect(parseDurationMs(1500, false)).toBe(1500);
  });

  it.each(['', '10x', '-1s', '1.5ms', 's', '10 s', '1d'])('rejects %j', (text) => {
    expect(() => parseDurationMs(text, true)).toThrow(ValueProblem);
  });

  it('names what it expected and what it got', () => {
    expect(() => parseDurationMs('soon', true)).toThrow('expected a duration like "30s", "100ms", "5m", "1h" or an integer of milliseconds, got "soon"');
    expect(() => parseDurationMs(true, false)).toThrow('got true');
  });

  it('formats back to the largest exact unit', () => {
    expect([0, 100, 30_000, 300_000, 7_200_000, 1500].map(formatDurationMs)).toEqual(['0s', '100ms', '30s', '5m', '2h', '1500ms']);
  });
});

describe('sizes', () => {
  it.each([
    ['1572864', 1_572_864],
    ['4MiB', 4_194_304],
    ['4MB', 4_000_000],
    ['8GiB', 8_589_934_592],
    ['1.5KiB', 1536],
    ['512 B', 512],
    ['2kib', 2048],
  ])('parses %s as %d bytes', (text, bytes) => {
    expect(parseSizeBytes(text, true)).toBe(bytes);
  });

  it('takes YAML integers as bytes but not quoted bare numbers', () => {
    expect(parseSizeBytes(4_194_304n, false)).toBe(4_194_304);
    expect(parseSizeBytes('4MiB', false)).toBe(4_194_304);
    expect(() => parseSizeBytes('4194304', false)).toThrow(ValueProblem);
  });

  it('rejects unknown units, fractions of a byte and values below the minimum', () => {
    expect(() => parseSizeBytes('4XB', true)).toThrow('expected a size in bytes like 4194304 or "4MiB", got "4XB"');
    expect(() => parseSizeBytes('0.5', true)).toThrow(ValueProblem);
    expect(() => parseSizeBytes('-1', true)).toThrow(ValueProblem);
    expect(parseSizeBytes('-1', true, -1)).toBe(-1);
    expect(() => parseSizeBytes('100', true, 1_048_576)).toThrow(ValueProblem);
  });
});

describe('integers and booleans', () => {
  it('checks range and says it in the message', () => {
    expect(parseInteger('2379', true, 1, 65_535)).toBe(2379);
    expect(() => parseInteger('abc', true, 1, 65_535)).toThrow('expected an integer 1-65535, got "abc"');
    expect(() => parseInteger(70_000n, false, 1, 65_535)).toThrow('expected an integer 1-65535, got 70000');
    expect(() => parseInteger('2379', false, 1, 65_535)).toThrow(ValueProblem); // quoted in YAML
    expect(() => parseInteger(1.5, false)).toThrow(ValueProblem);
  });

  it("accepts Go's boolean spellings from text, only booleans from YAML", () => {
    expect(['1', 't', 'TRUE', 'true', 'True'].map((s) => parseBool(s, true))).toEqual([true, true, true, true, true]);
    expect(['0', 'f', 'FALSE', 'false', 'False'].map((s) => parseBool(s, true))).toEqual([false, false, false, false, false]);
    expect(() => parseBool('yes', true)).toThrow('expected true or false, got "yes"');
    expect(() => parseBool('true', false)).toThrow(ValueProblem);
  });
});

describe('IDs', () => {
  it('keeps all 64 bits', () => {
    expect(parseId('18446744073709551615')).toBe(18_446_744_073_709_551_615n);
    expect(parseId(18_446_744_073_709_551_615n)).toBe(18_446_744_073_709_551_615n);
    expect(parseId('0x8e9e05c52164694d')).toBe(0x8e9e05c52164694dn);
    expect(parseId(7)).toBe(7n);
  });

  it('rejects negatives, overflow and words', () => {
    for (const bad of ['-1', '18446744073709551616', 'one', 1.5, -1n]) expect(() => parseId(bad)).toThrow(ValueProblem);
  });
});

describe('URLs, peers and the initial cluster', () => {
  it('parses URLs into scheme, host and port', () => {
    expect(parseUrl('http://127.0.0.1:2379')).toEqual({ scheme: 'http', host: '127.0.0.1', port: 2379 });
    expect(parseUrl('https://[::1]:2380/')).toEqual({ scheme: 'https', host: '::1', port: 2380 });
    // Port 0 (a free port) is a valid listen URL, as in etcd.
    expect(parseUrl('http://0.0.0.0:0')).toEqual({ scheme: 'http', host: '0.0.0.0', port: 0 });
    for (const bad of ['127.0.0.1:2379', 'http://host', 'ftp://h:1', 'http://h:70000', 'unix:///tmp/x.sock', 'unix://x', 'unixs://x:1/path']) {
      expect(() => parseUrl(bad)).toThrow(ValueProblem);
    }
  });

  it("takes unix and unixs URLs as etcd does: the host:port text is the socket file's name", () => {
    const unix = parseUrl('unix://localhost:12345');
    expect(unix).toEqual({ scheme: 'unix', host: 'localhost', port: 12_345 });
    expect(unixSocketPath(unix)).toBe('localhost:12345');
    expect(unixSocketPath(parseUrl('unixs://x:1'))).toBe('x:1');
    expect(unixSocketPath(parseUrl('http://x:1'))).toBeUndefined();
    expect(['http', 'https', 'unix', 'unixs'].map((scheme) => isSecureScheme(scheme as 'http'))).toEqual([false, true, false, true]);
  });

  it('parses peers ID@host:port', () => {
    expect(parsePeer('1@10.0.1.10:12379')).toEqual({ id: 1n, host: '10.0.1.10', port: 12_379 });
    for (const bad of ['10.0.1.10:12379', '0@h:1', 'x@h:1', '1@h', '1@h:99999']) expect(() => parsePeer(bad)).toThrow(ValueProblem);
  });

  it('groups repeated names of etcd --initial-cluster', () => {
    expect(parseInitialCluster(parseStringList('a=http://h1:2380,b=http://h2:2380,a=http://h1b:2380'))).toEqual([
      {
        name: 'a',
        peerUrls: [
          { scheme: 'http', host: 'h1', port: 2380 },
          { scheme: 'http', host: 'h1b', port: 2380 },
        ],
      },
      { name: 'b', peerUrls: [{ scheme: 'http', host: 'h2', port: 2380 }] },
    ]);
    expect(() => parseInitialCluster(['http://h1:2380'])).toThrow(ValueProblem);
  });

  it('splits comma lists and takes YAML sequences', () => {
    expect(parseStringList(' a, b ,,c ')).toEqual(['a', 'b', 'c']);
    expect(parseStringList('')).toEqual([]);
    expect(parseStringList(['x', 1n])).toEqual(['x', '1']);
    expect(() => parseStringList([{ a: 1 }])).toThrow(ValueProblem);
  });
});
