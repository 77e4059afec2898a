// The advertised client URLs' port 0: replaced by the bound port of the matching listen URL.
import { describe, expect, it } from 'vitest';
import { parseUrl } from '../config/values.js';
import { withBoundPort } from './client-edge.js';

describe('withBoundPort', () => {
  const wanted = ['http://127.0.0.1:0', 'https://10.0.0.1:0', 'http://localhost:2379'].map(parseUrl);
  const bound = wanted.map((url, i) => ({ ...url, port: [41000, 42000, 2379][i]! }));

  it('publishes the port a port-0 listen URL of the same scheme and host got', () => {
    expect(withBoundPort(parseUrl('http://127.0.0.1:0'), wanted, bound).port).toBe(41000);
    expect(withBoundPort(parseUrl('http://localhost:0'), wanted, bound).port).toBe(41000); // localhost binds 127.0.0.1
    expect(withBoundPort(parseUrl('https://10.0.0.1:0'), wanted, bound).port).toBe(42000);
  });

  it('keeps port 0 as etcd publishes it when no port-0 listen URL matches, and leaves other ports alone', () => {
    expect(withBoundPort(parseUrl('http://10.9.9.9:0'), wanted, bound).port).toBe(0);
    expect(withBoundPort(parseUrl('https://127.0.0.1:0'), wanted, bound).port).toBe(0);
    expect(withBoundPort(parseUrl('http://127.0.0.1:2379'), wanted, bound).port).toBe(2379);
  });
});
