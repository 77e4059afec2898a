// Child-process fixture for peer-transport.test.ts: three transports exchange messages and a
// snapshot is in flight, then all close. The process must then exit by itself (exit code 0,
// no process.exit): any timer, socket or call left behind would keep it alive and fail the test.

import { EntryType, MessageType, makeMessage, type Message } from '../../src/raft/types.js';
import { servePeerConnections } from '../../src/grpc/grpc-server.js';
import { PeerTransport } from '../../src/transport/peer-transport.js';

const ids = [1n, 2n, 3n];
let delivered = 0;
let wake: () => void = () => {};
const transports = await Promise.all(
  ids.map((memberId) =>
    PeerTransport.start({
      clusterId: 1n,
      memberId,
      listenHost: '127.0.0.1',
      listenPort: 0,
      peers: new Map(),
      serveCalls: servePeerConnections,
      onMessages: (messages: Message[]) => {
        delivered += messages.length;
        wake();
      },
    }),
  ),
);
for (const [i, t] of transports.entries()) {
  for (const [j, other] of transports.entries()) if (i !== j) t.addPeer(ids[j]!, `127.0.0.1:${other.port}`);
}
for (const [i, t] of transports.entries()) {
  const from = ids[i]!;
  t.send(
    ids
      .filter((to) => to !== from)
      .map((to) =>
        makeMessage({
          type: MessageType.MsgApp,
          from,
          to,
          entries: [{ term: 1, index: 1, type: EntryType.Normal, data: new Uint8Array(8) }],
        }),
      ),
  );
}
while (delivered < 6) await new Promise<void>((resolve) => (wake = resolve));
// Leave a large snapshot in flight and a link in backoff (a peer that never existed).
transports[0]!.send([
  makeMessage({
    type: MessageType.MsgSnap,
    from: 1n,
    to: 2n,
    snapshot: { metadata: { index: 1, term: 1, confState: { voters: ids, learners: [] } }, data: new Uint8Array(8 << 20) },
  }),
]);
transports[0]!.addPeer(9n, '127.0.0.1:1');
await Promise.all(transports.map((t) => t.close()));
console.log('closed');
