// etcd's HTTP/JSON gateway (grpc-gateway in etcd 3.4) on the client port: POST /v3/<path>
// (or /v3beta/<path>) with a JSON request runs the same gRPC handler a gRPC client reaches,
// through call objects that look like grpc-js's (gateway-call.ts), so auth, limits, the rate
// limit, metrics and errors are the gRPC path's own. One generic path serves every method:
// the route table names the method, the proto definitions do the rest.
//
//   unary          one JSON object in, one out; errors {"error","message","code"} with the
//                  HTTP status grpc-gateway maps the gRPC code to
//   server stream  one JSON object in; out a chunked stream of {"result": message} lines
//   bidi stream    a body of consecutive JSON objects, each sent as it arrives; the end of the
//                  body half-closes the call (a body that stops parsing half-closes it too,
//                  as grpc-gateway does); out as for a server stream
//   stream error   {"error":{"grpc_code","http_code","message","http_status"}}, then the end

import { TLSSocket } from 'node:tls';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type * as grpc from '@grpc/grpc-js';
import type { Handlers } from '../handler.js';
import type { ServiceName } from '../proto.js';
import { GatewayCallBase, GatewayStreamCall, httpCaller, type StreamSink } from './gateway-call.js';
import { GoJsonError, goString, readJsonValue, type JsonValue } from './go-json.js';
import { encodeJsonRequest, methodTypes, responseJson } from './json-codec.js';
import { httpStatusOf } from './http-status.js';
import { routeOf } from './routes.js';

export interface GatewayService {
  /** The definition grpc-js serves (with the request-size wrapper). */
  definition: grpc.ServiceDefinition;
  /** The handlers grpc-js calls (with the leader guard). */
  handlers: Handlers;
}

export type GatewayServices = Readonly<Record<ServiceName, GatewayService>>;

export interface GatewayOptions {
  /** Bodies over this are refused unread (well over what the gRPC size check lets through). */
  maxBodyBytes: number;
  /** True while etcd would refuse /v3/ requests whose client certificate has a CN (client
   * cert auth on and auth enabled: the gateway could not authenticate by that CN). */
  refusesCertificateCn?: () => boolean;
}

const CN_REFUSAL = 'CommonName of client sending a request against gateway will be ignored and not used as expected';

/** The verified client certificate's CN on a TLS connection, or '' (none, or plain text). */
export function clientCertificateCn(req: IncomingMessage): string {
  const socket = req.socket;
  if (!(socket instanceof TLSSocket) || !socket.authorized) return '';
  const cn: unknown = socket.getPeerCertificate().subject?.CN;
  return typeof cn === 'string' ? cn : Array.isArray(cn) ? String(cn[cn.length - 1] ?? '') : '';
}

interface Bound {
  definition: grpc.MethodDefinition<unknown, unknown>;
  handler: grpc.UntypedHandleCall;
  requestType: string;
  responseType: string;
}

const INVALID_ARGUMENT = 3;
const RESOURCE_EXHAUSTED = 8;

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
  res.end(`${text}\n`);
}

function sendJson(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(body);
}

export function errorBody(code: number, message: string): string {
  return `{"error":${goString(message)},"message":${goString(message)},"code":${code}}`;
}

function sendError(res: ServerResponse, status: Partial<grpc.ServiceError>): void {
  const code = status.code ?? 2;
  sendJson(res, httpStatusOf(code).status, errorBody(code, status.details ?? status.message ?? ''));
}

/** Reads a whole body; undefined (after answering) when it is over the limit. */
async function readBody(req: IncomingMessage, res: ServerResponse, limit: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      sendError(res, { code: RESOURCE_EXHAUSTED, details: `grpc: received message larger than max (${size} vs. ${limit})` });
      req.destroy();
      return undefined;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export class JsonGateway {
  private readonly bound = new Map<string, Bound>();

  constructor(
    private readonly services: GatewayServices,
    private readonly options: GatewayOptions,
  ) {}

  /** Serves one HTTP request for a path under /v3/ or /v3beta/. */
  serve(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]!;
    const route = routeOf(path);
    // etcd checks this before routing, and only under /v3/ (not /v3beta/).
    if (path.startsWith('/v3/') && this.options.refusesCertificateCn?.() && clientCertificateCn(req) !== '') sendText(res, 400, CN_REFUSAL);
    else if (route === undefined) sendText(res, 404, 'Not Found');
    else if (req.method !== 'POST') sendText(res, 405, 'Method Not Allowed');
    else {
      const bound = this.bind(route.service, route.method);
      if (bound.definition.requestStream) this.serveBidi(bound, req, res);
      else void this.serveSingleRequest(bound, req, res);
    }
  }

  private bind(service: ServiceName, method: string): Bound {
    const key = `${service}/${method}`;
    let bound = this.bound.get(key);
    if (bound === undefined) {
      const { definition, handlers } = this.services[service];
      const methodDefinition = definition[method] as grpc.MethodDefinition<unknown, unknown>;
      bound = { definition: methodDefinition, handler: handlers[method]!, ...methodTypes(methodDefinition.path) };
      this.bound.set(key, bound);
    }
    return bound;
  }

  /** JSON text -> the decoded request the handler sees (as grpc-js would decode it). */
  private decode(bound: Bound, value: JsonValue | undefined): unknown {
    const bytes = encodeJsonRequest(bound.requestType, value ?? new Map());
    return bound.definition.requestDeserialize(bytes);
  }

  private async serveSingleRequest(bound: Bound, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const text = await readBody(req, res, this.options.maxBodyBytes);
    if (text === undefined) return;
    let request: unknown;
    try {
      request = this.decode(bound, readJsonValue(text)?.value);
    } catch (error) {
      if (!(error instanceof GoJsonError)) throw error;
      return sendError(res, { code: INVALID_ARGUMENT, details: error.message });
    }
    if (bound.definition.responseStream) {
      const call = new GatewayStreamCall(request, httpCaller(req), this.streamSink(bound, res));
      attach(call, res);
      (bound.handler as grpc.handleServerStreamingCall<unknown, unknown>)(call as unknown as grpc.ServerWritableStream<unknown, unknown>);
      return;
    }
    const call = new GatewayCallBase(request, httpCaller(req));
    res.on('close', () => {
      if (!res.writableFinished) call.cancelUnary();
    });
    (bound.handler as grpc.handleUnaryCall<unknown, unknown>)(call as unknown as grpc.ServerUnaryCall<unknown, unknown>, (error, response) => {
      if (res.headersSent || res.destroyed) return;
      if (error) return sendError(res, error);
      sendJson(res, 200, responseJson(bound.responseType, bound.definition.responseSerialize(response)));
    });
  }

  private serveBidi(bound: Bound, req: IncomingMessage, res: ServerResponse): void {
    const call = new GatewayStreamCall(undefined, httpCaller(req), this.streamSink(bound, res));
    attach(call, res);
    (bound.handler as grpc.handleBidiStreamingCall<unknown, unknown>)(call as unknown as grpc.ServerDuplexStream<unknown, unknown>);
    let text = '';
    let offset = 0;
    let closed = false;
    const halfClose = (): void => {
      if (closed) return;
      closed = true;
      call.emit('end');
    };
    const pump = (final: boolean): void => {
      while (!closed) {
        let read: ReturnType<typeof readJsonValue>;
        try {
          read = readJsonValue(text, offset);
        } catch (error) {
          if (!(error instanceof GoJsonError)) throw error;
          // An incomplete object waits for more of the body; anything else ends the sending.
          if (final || error.message !== 'unexpected EOF') halfClose();
          return;
        }
        if (read === undefined) {
          if (final) halfClose();
          return;
        }
        offset = read.end;
        let request: unknown;
        try {
          request = this.decode(bound, read.value);
        } catch (error) {
          if (!(error instanceof GoJsonError)) throw error;
          halfClose();
          return;
        }
        call.emit('data', request);
      }
    };
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      text = text.slice(offset) + chunk;
      offset = 0;
      pump(false);
    });
    req.on('end', () => pump(true));
  }

  private streamSink(bound: Bound, res: ServerResponse): StreamSink {
    const start = (status: number): void => {
      if (!res.headersSent) res.writeHead(status, { 'content-type': 'application/json' });
    };
    return {
      message: (response, written) => {
        start(200);
        const json = responseJson(bound.responseType, bound.definition.responseSerialize(response));
        return res.write(`{"result":${json}}\n`, written);
      },
      failed: (status) => {
        const code = status.code ?? 2;
        const http = httpStatusOf(code);
        start(http.status);
        const message = goString(status.details ?? status.message ?? '');
        res.end(`{"error":{"grpc_code":${code},"http_code":${http.status},"message":${message},"http_status":${goString(http.text)}}}`);
      },
      ended: () => {
        start(200);
        res.end();
      },
    };
  }
}

/** The HTTP response's life reaches the call: readable again ('drain'), client gone ('cancelled'). */
function attach(call: GatewayStreamCall, res: ServerResponse): void {
  res.on('drain', () => call.emit('drain'));
  res.on('close', () => call.cancel());
}
