// Script-style interaction tests in the manner of etcd-io/raft's testdata: each script is a
// list of commands against a TestCluster, with inline expectations. The DSL is tiny on purpose:
//   cluster 1 2 3 [learners=4,5] [prevote=false] [checkquorum=false]
//   add-node 4 | campaign 1 | propose 1 data | conf 1 add|remove|learner 4 | transfer 1 2
//   read 1 ctx | isolate 3 | partition 1,2/3 | heal | tick N [ids] | stabilize
//   expect role|term|lead|commit|applied|voters|learners|reads <id> <value>

import { describe, expect, it } from 'vitest';
import { TestCluster, enc } from '../../test/raft/test-harness.js';
import { ConfChangeType, roleName } from './types.js';

function ids(list: string): bigint[] {
  return list
    .split(',')
    .filter((x) => x !== '')
    .map((x) => BigInt(x));
}

function run(script: string): void {
  let c: TestCluster | undefined;
  const cl = (): TestCluster => {
    if (c === undefined) throw new Error('no cluster yet');
    return c;
  };
  let lineNo = 0;
  for (const raw of script.split('\n')) {
    lineNo++;
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    const [cmd, ...args] = line.split(/\s+/) as [string, ...string[]];
    const at = `line ${lineNo}: ${line}`;
    const a = (i: number): string => {
      const v = args[i];
      if (v === undefined) throw new Error(`${at}: missing argument ${i}`);
      return v;
    };
    switch (cmd) {
      case 'cluster': {
        const voters = args.filter((x) => /^\d+$/.test(x)).map((x) => BigInt(x));
        const opt = (k: string): string | undefined => args.find((x) => x.startsWith(`${k}=`))?.slice(k.length + 1);
        c = new TestCluster(voters, {
          learners: ids(opt('learners') ?? ''),
          preVote: opt('prevote') !== 'false',
          checkQuorum: opt('checkquorum') !== 'false',
        });
        break;
      }
      case 'add-node':
        cl().add(BigInt(a(0)), { peers: [] });
        break;
      case 'campaign':
        cl().campaign(BigInt(a(0)));
        break;
      case 'propose':
        cl()
          .get(BigInt(a(0)))
          .node.propose(enc(a(1)));
        cl().stabilize();
        break;
      case 'conf': {
        const type = { add: ConfChangeType.AddNode, remove: ConfChangeType.RemoveNode, learner: ConfChangeType.AddLearnerNode }[a(1)];
        if (type === undefined) throw new Error(`${at}: bad conf change`);
        cl()
          .get(BigInt(a(0)))
          .node.proposeConfChange({ type, nodeId: BigInt(a(2)) });
        cl().stabilize();
        break;
      }
      case 'transfer':
        cl()
          .get(BigInt(a(0)))
          .node.transferLeader(BigInt(a(1)));
        cl().stabilize();
        break;
      case 'read':
        cl()
          .get(BigInt(a(0)))
          .node.readIndex(enc(a(1)));
        cl().stabilize();
        break;
      case 'isolate':
        cl().isolate(BigInt(a(0)));
        break;
      case 'partition': {
        const [l, r] = a(0).split('/') as [string, string];
        cl().partition(ids(l), ids(r));
        break;
      }
      case 'heal':
        cl().heal();
        break;
      case 'tick':
        cl().tick(Number(a(0)), args[1] === undefined ? undefined : ids(args[1]));
        break;
      case 'stabilize':
        cl().stabilize();
        break;
      case 'expect': {
        const tn = cl().get(BigInt(a(1)));
        const st = tn.node.status();
        const want = args.slice(2).join(' ');
        let got: string;
        switch (a(0)) {
          case 'role':
            got = roleName(st.role);
            break;
          case 'term':
            got = String(st.term);
            break;
          case 'lead':
            got = String(st.lead);
            break;
          case 'commit':
            got = String(st.commit);
            break;
          case 'applied':
            got = cl().appliedData(tn.id).join(',');
            break;
          case 'voters':
            got = tn.confState.voters.join(',');
            break;
          case 'learners':
            got = tn.confState.learners.join(',');
            break;
          case 'reads':
            got = tn.reads.join(',');
            break;
          default:
            throw new Error(`${at}: unknown expectation`);
        }
        expect(got, at).toBe(want);
        break;
      }
      default:
        throw new Error(`${at}: unknown command`);
    }
  }
}

describe('interaction scripts', () => {
  it('election, replication and a partitioned minority', () => {
    run(`
      cluster 1 2 3
      campaign 1
      expect role 1 Leader
      expect term 2 2
      propose 1 a
      propose 2 b          # forwarded by the follower
      expect applied 3 a,b
      isolate 3
      propose 1 c
      expect applied 2 a,b,c
      expect applied 3 a,b
      tick 30 3            # pre-vote keeps the isolated node from raising its term
      expect term 3 2
      expect role 3 PreCandidate
      heal
      tick 2
      expect applied 3 a,b,c
      expect role 1 Leader
    `);
  });

  it('minority partition of the leader: new leader, old one steps down, logs converge', () => {
    run(`
      cluster 1 2 3 4 5
      campaign 1
      propose 1 x
      partition 1,2/3,4,5
      propose 1 lost      # cannot commit in the minority
      tick 25
      expect role 1 Follower
      heal
      tick 30
      propose 3 y
      expect applied 1 x,y
      expect applied 5 x,y
    `);
  });

  it('membership: add learner, promote, remove, leader transfer', () => {
    run(`
      cluster 1 2 3
      campaign 1
      propose 1 a
      add-node 4
      conf 1 learner 4
      tick 2
      expect learners 4 4
      expect applied 4 a
      conf 1 add 4
      expect voters 1 1,2,3,4
      transfer 1 4
      expect role 4 Leader
      conf 4 remove 1
      expect voters 4 2,3,4
      propose 4 b
      expect applied 2 a,b
    `);
  });

  it('read index from leader and follower', () => {
    run(`
      cluster 1 2 3
      campaign 1
      propose 1 a
      expect commit 1 5
      read 1 r1
      expect reads 1 5:r1
      read 3 r2
      expect reads 3 5:r2
    `);
  });
});
