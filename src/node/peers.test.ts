import { describe, expect, it } from 'vitest';
import type { Message } from '../raft/types.js';
import { PeerDirectory, PeerOutbox } from './peers.js';

function recordingLinks() {
  const calls: string[] = [];
  return {
    calls,
    links: {
      updatePeer: (id: bigint, address: string) => calls.push(`update ${id} ${address}`),
      removePeer: (id: bigint) => calls.push(`remove ${id}`),
    },
  };
}

const member = (id: bigint, ...peerUrls: string[]) => ({ id, peerUrls });

describe('peer directory: the transport follows the member list', () => {
  it('leaves known peers alone, adds new ones at their first peer URL, and never adds itself', () => {
    const { calls, links } = recordingLinks();
    const directory = new PeerDirectory(1n, links, new Map([[2n, '127.0.0.1:2380']]));
    directory.follow([member(1n, 'http://127.0.0.1:1380'), member(2n, 'http://127.0.0.1:2380/'), member(3n, 'https://127.0.0.1:3380', 'http://x:1')]);
    expect(calls).toEqual(['update 3 127.0.0.1:3380']);
  });

  it('re-points a member whose peer URL changed and drops removed members', () => {
    const { calls, links } = recordingLinks();
    const directory = new PeerDirectory(
      1n,
      links,
      new Map([
        [2n, 'a:1'],
        [3n, 'b:1'],
      ]),
    );
    directory.follow([member(1n, 'http://self:1'), member(2n, 'http://a:2')]);
    expect(calls).toEqual(['update 2 a:2', 'remove 3']);
    calls.length = 0;
    directory.follow([member(1n, 'http://self:1'), member(2n, 'http://a:2')]);
    expect(calls).toEqual([]);
  });

  it('a member without a peer URL yet is not a peer', () => {
    const { calls, links } = recordingLinks();
    const directory = new PeerDirectory(1n, links, new Map([[2n, 'a:1']]));
    directory.follow([member(2n)]);
    expect(calls).toEqual(['remove 2']);
  });
});

describe('peer outbox', () => {
  it('drops messages until the transport is attached, then passes them on', () => {
    const outbox = new PeerOutbox();
    const sent: Message[][] = [];
    const batch = [{ to: 2n } as unknown as Message];
    outbox.send(batch);
    outbox.attach({ send: (messages) => sent.push(messages) });
    outbox.send(batch);
    expect(sent).toEqual([batch]);
  });
});
