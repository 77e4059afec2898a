// Channels from this member to other members' client ports: the leader forwarding, the lease
// relays and the corruption checks' HashKV all dial through one dialer, so they all use the
// member's outbound client TLS (src/tls/member-channel-tls.ts) or all plain text.
//
// Clients are cached per service and address (forwarded calls are frequent; a channel keeps
// its connection). close() closes every cached client (at shutdown); a later call dials anew.

import * as grpc from '@grpc/grpc-js';
import { clients, type ServiceName } from './proto.js';

export class MemberDialer {
  private readonly stubs = new Map<string, grpc.Client>();

  /** Without credentials the channels are plain text (a plain-text client port). */
  constructor(readonly credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure()) {}

  /** The cached client of `service` on the member whose client port is `address` (host:port). */
  // biome-ignore lint/suspicious/noExplicitAny: grpc-js stubs are built from the proto at run time; callers look methods up by name
  stub(service: ServiceName, address: string): any {
    const key = `${service}@${address}`;
    let stub = this.stubs.get(key);
    if (stub === undefined) {
      stub = new clients[service](address, this.credentials);
      this.stubs.set(key, stub);
    }
    return stub;
  }

  /** A client of its own for a rare call (the caller closes it), so no channel stays open. */
  // biome-ignore lint/suspicious/noExplicitAny: as stub()
  once(service: ServiceName, address: string): any {
    return new clients[service](address, this.credentials);
  }

  close(): void {
    for (const stub of this.stubs.values()) stub.close();
    this.stubs.clear();
  }
}
