// How a member's advertised URL becomes the address a gRPC client dials: the host:port, without
// the scheme (grpc-js takes a bare target) and without a trailing slash.

/** `http://10.0.0.1:2379/` -> `10.0.0.1:2379`; anything else passes through unchanged. */
export function dialAddress(url: string): string {
  return url.replace(/^https?:\/\//, '').replace(/\/$/, '');
}
