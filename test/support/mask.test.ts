// maskIds/maskVolatile on etcdctl 3.4.23 output captured from a live single-member etcd.
import { describe, expect, it } from 'vitest';
import { maskIds, maskVolatile } from './mask.js';

describe('maskIds', () => {
  it('masks JSON headers but keeps revisions and zero (nested txn) headers', () => {
    const json =
      '{"header":{"cluster_id":324952591200643719,"member_id":3319814642761637952,"revision":7,"raft_term":2},' +
      '"responses":[{"Response":{"ResponsePut":{"header":{"revision":7}}}}]}';
    expect(maskIds(json)).toBe(
      '{"header":{"cluster_id":"<cluster_id>","member_id":"<member_id>","revision":7,"raft_term":"<raft_term>"},' +
        '"responses":[{"Response":{"ResponsePut":{"header":{"revision":7}}}}]}',
    );
  });

  it('masks member list / endpoint status JSON but not lease IDs', () => {
    expect(maskIds('"members":[{"ID":3319814642761637952,"name":"default","peerURLs":["x"]}]')).toBe(
      '"members":[{"ID":"<member_id>","name":"default","peerURLs":["x"]}]',
    );
    expect(maskIds('{"ID":7587869204537519364,"TTL":60}')).toBe('{"ID":7587869204537519364,"TTL":60}');
    expect(maskIds('"leader":3319814642761637952,"raftIndex":9,"raftTerm":2,')).toBe('"leader":"<member_id>","raftIndex":9,"raftTerm":"<raft_term>",');
  });

  it('masks fields output, leaving zero IDs of nested headers', () => {
    const fields = [
      '"ClusterID" : 324952591200643719',
      '"MemberID" : 3319814642761637952',
      '"Revision" : 8',
      '"RaftTerm" : 2',
      '"Succeeded" : false',
      '"ClusterID" : 0',
      '"MemberID" : 0',
      '"Revision" : 8',
      '"RaftTerm" : 0',
      '"ID" : 3319814642761637952',
      '"Name" : "default"',
      '',
    ].join('\n');
    expect(maskIds(fields)).toBe(
      [
        '"ClusterID" : <cluster_id>',
        '"MemberID" : <member_id>',
        '"Revision" : 8',
        '"RaftTerm" : <raft_term>',
        '"Succeeded" : false',
        '"ClusterID" : 0',
        '"MemberID" : 0',
        '"Revision" : 8',
        '"RaftTerm" : 0',
        '"ID" : <member_id>',
        '"Name" : "default"',
        '',
      ].join('\n'),
    );
  });

  it('masks hex member IDs and raft terms in simple and table output', () => {
    expect(maskIds('2e1259d415f2a040, started, default, http://127.0.0.1:23800, http://127.0.0.1:23790, false\n')).toBe(
      '<member_id>, started, default, http://127.0.0.1:23800, http://127.0.0.1:23790, false\n',
    );
    expect(maskIds('http://127.0.0.1:23790, 2e1259d415f2a040, 3.4.23, 20 kB, true, false, 2, 9, 9, \n')).toBe(
      'http://127.0.0.1:23790, <member_id>, 3.4.23, 20 kB, true, false, <raft_term>, 9, 9, \n',
    );
    const table = [
      '+------------------------+------------------+---------+-----------+------------+',
      '|        ENDPOINT        |        ID        | VERSION | RAFT TERM | RAFT INDEX |',
      '+------------------------+------------------+---------+-----------+------------+',
      '| http://127.0.0.1:23790 | 2e1259d415f2a040 |  3.4.23 |         2 |          9 |',
      '+------------------------+------------------+---------+-----------+------------+',
      '',
    ].join('\n');
    const shorter = table.replace('2e1259d415f2a040', '  e1259d415f2a04');
    expect(maskIds(table)).toBe(maskIds(shorter));
    expect(maskIds(table)).toContain('| http://127.0.0.1:23790 | <member_id> | 3.4.23 | <raft_term> | 9 |');
  });

  it('leaves KV output alone', () => {
    const simple = 'a\n1\nbeef\ncafe, started\n';
    expect(maskIds(simple)).toBe(simple);
    const fields = '"Key" : "a"\n"CreateRevision" : 2\n"ModRevision" : 5\n"Version" : 4\n"Lease" : 0\n';
    expect(maskIds(fields)).toBe(fields);
  });
});

describe('maskVolatile', () => {
  it('masks timestamps, client UUIDs and endpoints of retry warnings', () => {
    const line =
      '{"level":"warn","ts":"2026-11-22T04:35:33.719Z","caller":"clientv3/retry_interceptor.go:62",' +
      '"msg":"retrying of unary invoker failed","target":"endpoint://client-923fe6fa-e409-46cc-ab69-fc4e3ff3a0a9/127.0.0.1:23790",' +
      '"attempt":0,"error":"rpc error: code = InvalidArgument desc = etcdserver: key is not provided"}';
    expect(maskVolatile(line, ['http://127.0.0.1:23790'])).toBe(
      '{"level":"warn","ts":"<ts>","caller":"clientv3/retry_interceptor.go:62",' +
        '"msg":"retrying of unary invoker failed","target":"endpoint://client-<uuid>/<endpoint-host>",' +
        '"attempt":0,"error":"rpc error: code = InvalidArgument desc = etcdserver: key is not provided"}',
    );
  });
});
