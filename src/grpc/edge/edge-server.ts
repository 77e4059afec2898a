// What an edge process serves on the client connections the primary hands it: gRPC on
// MetaStore's own HTTP/2 connection and call layer (grpc-server.ts serveGrpcConnections, as on
// the member's client listener) over the relaying handlers of every service (edge-relay.ts),
// with the member's settings (message limits, concurrent streams, keepalive pings and
// ping-strike enforcement, receive admission: each edge admits its share of
// max_receiving_request_bytes), and HTTP/1.1: etcd's JSON gateway runs here over the same
// relaying handlers (so gateway streams, e.g. watch, stream through the edge); every other path
// (health, readiness, metrics, version) is relayed whole to the primary's client-port app.

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { ConnectionRouter } from '../connection-router.js';
import { clientCertificateCn, JsonGateway } from '../gateway/gateway.js';
import { type ConnectionOptions, serveGrpcConnections } from '../grpc-server.js';
import { ChannelClosedError, type EdgeRelay } from './edge-relay.js';

export type EdgeServerOptions = ConnectionOptions & {
  /** etcd's JSON gateway under /v3/ and /v3beta/ (--enable-grpc-gateway). */
  readonly gateway?: { readonly maxBodyBytes: number };
};

export interface RunningEdgeServer {
  /** Stops new calls, lets running ones finish for up to `graceMs`, then cuts the rest. */
  close(graceMs: number): Promise<void>;
}

/** Largest body of an HTTP/1.1 request relayed to the primary (its endpoints take none). */
const MAX_RELAYED_BODY_BYTES = 1024 * 1024;
const GATEWAY_PREFIXES = ['/v3/', '/v3beta/'];

export function startEdgeServer(relay: EdgeRelay, router: ConnectionRouter, options: EdgeServerOptions): RunningEdgeServer {
  const served = relay.services();
  const connections = serveGrpcConnections(served, options);
  // Whether the member refuses certificate CNs on /v3/ (client cert auth and auth enabled) is
  // asked afresh for each request that has one: auth may have been enabled a moment ago.
  let refusesCertificateCn = false;
  const gateway =
    options.gateway === undefined
      ? undefined
      : new JsonGateway(served, { maxBodyBytes: options.gateway.maxBodyBytes, refusesCertificateCn: () => refusesCertificateCn });
  const serveGateway = (gateway: JsonGateway, req: IncomingMessage, res: ServerResponse, path: string): void => {
    if (!path.startsWith('/v3/') || clientCertificateCn(req) === '') {
      refusesCertificateCn = false;
      gateway.serve(req, res);
      return;
    }
    relay.queryState().then(
      (state) => {
        refusesCertificateCn = state.refusesCertificateCn === true;
        gateway.serve(req, res);
      },
      (error: unknown) => {
        if (!(error instanceof ChannelClosedError)) throw error;
        res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' }).end('member process unavailable\n');
      },
    );
  };
  const http1 = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (gateway !== undefined && GATEWAY_PREFIXES.some((prefix) => path.startsWith(prefix))) serveGateway(gateway, req, res, path);
    else void relayHttp(relay, req, res);
  });
  router.serveGrpc((socket) => connections.accept(socket));
  router.serveHttp1((socket) => http1.emit('connection', socket));
  return {
    close: async (graceMs) => {
      http1.closeAllConnections();
      await connections.close(graceMs);
    },
  };
}

/** Hop-by-hop headers of the primary's answer that the edge's own HTTP server sets. */
const NOT_RELAYED = new Set(['connection', 'transfer-encoding', 'keep-alive', 'content-length']);

async function relayHttp(relay: EdgeRelay, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_RELAYED_BODY_BYTES) {
      res.writeHead(413).end();
      req.destroy();
      return;
    }
    chunks.push(chunk);
  }
  let answer: Awaited<ReturnType<EdgeRelay['relayHttp']>>;
  try {
    answer = await relay.relayHttp({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers }, Buffer.concat(chunks));
  } catch (error) {
    if (!(error instanceof ChannelClosedError)) throw error;
    // The channel to the primary is gone: this edge is about to be replaced.
    res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' }).end('member process unavailable\n');
    return;
  }
  const headers: Record<string, string | string[] | number> = {};
  for (const [name, value] of Object.entries(answer.head.headers)) if (value !== undefined && !NOT_RELAYED.has(name.toLowerCase())) headers[name] = value;
  headers['content-length'] = answer.body.length;
  res.writeHead(answer.head.status, headers);
  res.end(req.method === 'HEAD' ? undefined : answer.body);
}
