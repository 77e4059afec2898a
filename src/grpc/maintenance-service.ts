// etcd's Maintenance service: the parts a single member can answer today. Status is what
// `etcdctl endpoint status` shows; Alarm GET lists no alarms (no alarm can be raised yet);
// Defragment compacts LevelDB. The rest answers UNIMPLEMENTED until it is built.

import type { KvServer } from '../server/kv-server.js';
import { KeySpace } from '../storage/backend.js';
import { type Handlers, type ResponseHeaders, unary } from './handler.js';

/** The etcd release whose API and behaviour MetaStore reproduces; clients gate features on it. */
export const ETCD_COMPATIBLE_VERSION = '3.4.23';

export function maintenanceHandlers(kv: KvServer, headers: ResponseHeaders, identity: { memberId: bigint }): Handlers {
  return {
    Status: unary('Status', async () => {
      const [dbSize, dbSizeInUse] = await Promise.all([kv.backend.sizeBytes(), kv.backend.spaceSizeBytes(KeySpace.mvcc)]);
      return {
        header: headers.at(kv.currentRevision),
        version: ETCD_COMPATIBLE_VERSION,
        dbSize,
        dbSizeInUse,
        leader: kv.leader(identity.memberId).toString(),
        raftIndex: kv.commitIndex,
        raftTerm: kv.term,
        raftAppliedIndex: kv.appliedIndex,
        errors: [],
        isLearner: false,
      };
    }),

    Alarm: unary<{ action?: number }>('Alarm', (request) => {
      if ((request.action ?? 0) !== 0) {
        throw new Error('alarm activation is not implemented');
      }
      return { header: headers.at(kv.currentRevision), alarms: [] };
    }),

    Defragment: unary('Defragment', async () => {
      await kv.backend.compactAll();
      return { header: headers.at(kv.currentRevision) };
    }),
  };
}
