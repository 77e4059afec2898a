// etcd 3.4's gateway paths (the google.api.http options of its .proto files, which ours leave
// out): every one is POST with the whole request as the body. Where two methods share a path
// (Hash and HashKV on /v3/maintenance/hash) grpc-gateway serves the first registered, Hash.
// Lock.Lock's .proto path says /v3/lock, but etcd 3.4.23's generated gateway pattern is
// /v3/lock/lock (its /v3/lock answers 404): the generated pattern is what curl users meet.

import type { ServiceName } from '../proto.js';

export interface GatewayRoute {
  service: ServiceName;
  method: string;
}

const TABLE: ReadonlyArray<[path: string, service: ServiceName, method: string]> = [
  ['kv/range', 'KV', 'Range'],
  ['kv/put', 'KV', 'Put'],
  ['kv/deleterange', 'KV', 'DeleteRange'],
  ['kv/txn', 'KV', 'Txn'],
  ['kv/compaction', 'KV', 'Compact'],
  ['watch', 'Watch', 'Watch'],
  ['lease/grant', 'Lease', 'LeaseGrant'],
  ['lease/revoke', 'Lease', 'LeaseRevoke'],
  ['kv/lease/revoke', 'Lease', 'LeaseRevoke'],
  ['lease/keepalive', 'Lease', 'LeaseKeepAlive'],
  ['lease/timetolive', 'Lease', 'LeaseTimeToLive'],
  ['kv/lease/timetolive', 'Lease', 'LeaseTimeToLive'],
  ['lease/leases', 'Lease', 'LeaseLeases'],
  ['kv/lease/leases', 'Lease', 'LeaseLeases'],
  ['cluster/member/add', 'Cluster', 'MemberAdd'],
  ['cluster/member/remove', 'Cluster', 'MemberRemove'],
  ['cluster/member/update', 'Cluster', 'MemberUpdate'],
  ['cluster/member/list', 'Cluster', 'MemberList'],
  ['cluster/member/promote', 'Cluster', 'MemberPromote'],
  ['maintenance/alarm', 'Maintenance', 'Alarm'],
  ['maintenance/status', 'Maintenance', 'Status'],
  ['maintenance/defragment', 'Maintenance', 'Defragment'],
  ['maintenance/hash', 'Maintenance', 'Hash'],
  ['maintenance/snapshot', 'Maintenance', 'Snapshot'],
  ['maintenance/transfer-leadership', 'Maintenance', 'MoveLeader'],
  ['auth/enable', 'Auth', 'AuthEnable'],
  ['auth/disable', 'Auth', 'AuthDisable'],
  ['auth/authenticate', 'Auth', 'Authenticate'],
  ['auth/user/add', 'Auth', 'UserAdd'],
  ['auth/user/get', 'Auth', 'UserGet'],
  ['auth/user/list', 'Auth', 'UserList'],
  ['auth/user/delete', 'Auth', 'UserDelete'],
  ['auth/user/changepw', 'Auth', 'UserChangePassword'],
  ['auth/user/grant', 'Auth', 'UserGrantRole'],
  ['auth/user/revoke', 'Auth', 'UserRevokeRole'],
  ['auth/role/add', 'Auth', 'RoleAdd'],
  ['auth/role/get', 'Auth', 'RoleGet'],
  ['auth/role/list', 'Auth', 'RoleList'],
  ['auth/role/delete', 'Auth', 'RoleDelete'],
  ['auth/role/grant', 'Auth', 'RoleGrantPermission'],
  ['auth/role/revoke', 'Auth', 'RoleRevokePermission'],
  ['lock/lock', 'Lock', 'Lock'],
  ['lock/unlock', 'Lock', 'Unlock'],
  ['election/campaign', 'Election', 'Campaign'],
  ['election/proclaim', 'Election', 'Proclaim'],
  ['election/leader', 'Election', 'Leader'],
  ['election/observe', 'Election', 'Observe'],
  ['election/resign', 'Election', 'Resign'],
];

const BY_PATH: ReadonlyMap<string, GatewayRoute> = new Map(TABLE.map(([path, service, method]) => [`/v3/${path}`, { service, method }]));

/** The method served at a URL path (etcd rewrites /v3beta/ to /v3/ first), if any. */
export function routeOf(path: string): GatewayRoute | undefined {
  const v3 = path.startsWith('/v3beta/') ? `/v3/${path.slice('/v3beta/'.length)}` : path;
  return BY_PATH.get(v3);
}
