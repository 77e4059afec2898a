// How a member's advertised URL becomes the address a gRPC client dials: the host:port, without
// the scheme (grpc-js takes a bare target) and without a trailing slash.

/**
 * `http://10.0.0.1:2379/` -> `10.0.0.1:2379`; `unix://localhost:2379` -> `unix:localhost:2379`
 * (grpc-js's unix socket target; the URL's host:port is the socket file, as in etcd); anything
 * else passes through unchanged.
 */
export function dialAddress(url: string): string {
  const trimmed = url.replace(/\/$/, '');
  if (/^unixs?:\/\//.test(trimmed)) return trimmed.replace(/^unixs?:\/\//, 'unix:');
  return trimmed.replace(/^https?:\/\//, '');
}
