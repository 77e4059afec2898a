// A raw etcd Watch stream over grpc-js for tests that look at the wire responses themselves
// (progress notifications, how a stream ends), against MetaStore or real etcd alike.

import * as grpc from '@grpc/grpc-js';
import { clients } from '../../src/grpc/proto.js';
import { Notifier } from './wait.js';

export type Msg = Record<string, any>;

/** How a stream ended: the status the server sent (or the client's own cancel). */
export interface StreamEnd {
  code: grpc.status;
  details: string;
}

export function grpcTarget(endpoint: string): string {
  return endpoint.replace(/^http:\/\//, '');
}

/** Outgoing metadata of etcd's clientv3.WithRequireLeader. */
export function requireLeaderMetadata(): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set('hasleader', 'true');
  return metadata;
}

/** A raw Watch stream: send requests, await responses in order, await its end. */
export class RawWatch {
  readonly received: Msg[] = [];
  /** Resolves with the final status once the stream has ended. */
  readonly ended: Promise<StreamEnd>;
  /** Notified on every response and at the end of the stream. */
  readonly changes = new Notifier();
  private endStatus: StreamEnd | undefined;
  private readonly call: grpc.ClientDuplexStream<object, Msg>;
  private readonly client: grpc.Client;

  constructor(endpoint: string, metadata: grpc.Metadata = new grpc.Metadata()) {
    this.client = new clients.Watch(grpcTarget(endpoint), grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
    });
    this.call = (this.client as any).watch(metadata);
    this.call.on('data', (m: Msg) => {
      this.received.push(m);
      this.changes.notify();
    });
    this.call.on('error', () => undefined);
    this.ended = new Promise((resolve) => {
      this.call.on('status', (status: grpc.StatusObject) => {
        this.endStatus = { code: status.code, details: status.details };
        this.changes.notify();
        resolve(this.endStatus);
      });
    });
  }

  get hasEnded(): boolean {
    return this.endStatus !== undefined;
  }

  send(request: object): void {
    this.call.write(request);
  }

  /** The next `count` responses, in order; fails after `timeoutMs` or when the stream ends first. */
  async next(count: number, timeoutMs = 5000): Promise<Msg[]> {
    await this.changes.until(
      () => {
        if (this.received.length >= count) return true;
        if (this.endStatus !== undefined) throw new Error(`stream ended after ${this.received.length}/${count} responses: ${JSON.stringify(this.endStatus)}`);
        return false;
      },
      { what: `${count} watch responses`, timeoutMs, detail: () => `${this.received.length} received: ${JSON.stringify(this.received).slice(0, 2000)}` },
    );
    return this.received.splice(0, count);
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}
