// Opens the member's database and fixes its identity. The member and cluster IDs are derived
// from the configuration at first start, stored, and read back on every later start (as etcd
// does), so a later change of flags cannot silently re-identify a member. A member joining an
// existing cluster learns the cluster ID from its first peer frame and stores it then.

import type { Config } from '../config/schema.js';
import { Backend, KeySpace, spaceKey } from '../storage/backend.js';

export interface Identity {
  memberId: bigint;
  clusterId: bigint;
}

export interface StorageOptions {
  dataDir: string;
  storage: Config['storage'];
  /** The identity a first start stores (derived from the initial cluster). */
  derived: Identity;
  /** Every backend write with its duration, and whether it was synced (for the disk metrics). */
  onWrite(seconds: number, synced: boolean): void;
}

export interface NodeStorage {
  readonly backend: Backend;
  /** This member's identity: one object, read live by whoever holds it (the cluster ID may be learnt). */
  readonly identity: Identity;
  /** Whether the data dir already held an identity (a restart rather than a first start). */
  readonly identityWasStored: boolean;
  /** Records the cluster ID a joining member learnt from its peers. */
  adoptClusterId(clusterId: bigint): Promise<void>;
  close(): Promise<void>;
}

const IDENTITY_KEY = 'local';

export async function openStorage(options: StorageOptions): Promise<NodeStorage> {
  const backend = await Backend.open(options.dataDir, {
    cacheSizeBytes: options.storage.blockCacheSize,
    writeBufferSizeBytes: options.storage.writeBufferSize,
    maxOpenFiles: options.storage.maxOpenFiles,
    compression: options.storage.compression,
    onWrite: (seconds, synced) => options.onWrite(seconds, synced),
  });
  const stored = backend.get(KeySpace.members, IDENTITY_KEY);
  const identity: Identity =
    stored !== undefined ? { memberId: stored.readBigUInt64BE(0), clusterId: stored.readBigUInt64BE(8) } : { ...options.derived };
  if (stored === undefined) await storeIdentity(backend, identity);
  return {
    backend,
    identity,
    identityWasStored: stored !== undefined,
    adoptClusterId: (clusterId) => {
      identity.clusterId = clusterId;
      return storeIdentity(backend, identity);
    },
    close: () => backend.close(),
  };
}

async function storeIdentity(backend: Backend, identity: Identity): Promise<void> {
  const value = Buffer.alloc(16);
  value.writeBigUInt64BE(identity.memberId, 0);
  value.writeBigUInt64BE(identity.clusterId, 8);
  await backend.write([{ type: 'put', key: spaceKey(KeySpace.members, Buffer.from(IDENTITY_KEY)), value }], { sync: true });
}
